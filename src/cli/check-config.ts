import { describeError } from '../errors.js';
import { loadConfig } from '../config/load.js';

/** Validates a config file; prints every problem and returns the exit code. */
export function checkConfig(file: string | undefined, out = (l: string) => process.stdout.write(`${l}\n`), err = (l: string) => process.stderr.write(`${l}\n`)): number {
  try {
    const cfg = loadConfig(file ? { file } : {});
    out(`config OK${file ? `: ${file}` : ' (defaults and environment)'}: ${cfg.sip.listen.length} SIP listener(s), ${cfg.ami.boxes.length} AMI box(es), db ${cfg.db.url ? 'set' : 'NOT set'}`);
    return 0;
  } catch (e) {
    err(describeError(e));
    return 1;
  }
}
