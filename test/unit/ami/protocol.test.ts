import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { AmiFramer, AmiMessage, canonicalKey, serializeMessage } from '../../../src/ami/protocol.js';
import { isGwError } from '../../../src/errors.js';

const fixture = (name: string): Buffer => readFileSync(join(import.meta.dirname, '../../fixtures/ami', name));

function frame(chunks: Array<Buffer | string>): { banner: string[]; messages: AmiMessage[] } {
  const banner: string[] = [];
  const messages: AmiMessage[] = [];
  const f = new AmiFramer({ banner: (l) => banner.push(l), message: (m) => messages.push(m) });
  for (const c of chunks) f.push(c);
  return { banner, messages };
}

describe('AMI framer', () => {
  test('the fixtures keep Asterisk CRLF bytes', () => {
    const b = fixture('01-pjsip-answer.rx.ami').toString('latin1');
    expect(b.startsWith('Asterisk Call Manager/9.0.0\r\nResponse: Success\r\n')).toBe(true);
    expect(b.replace(/\r\n/g, '')).not.toContain('\n');
  });

  test('a capture read in one piece: banner, login response, every event, the Goodbye', () => {
    const { banner, messages } = frame([fixture('01-pjsip-answer.rx.ami')]);
    expect(banner).toEqual(['Asterisk Call Manager/9.0.0']);
    expect(messages[0]!.toObject()).toEqual({ Response: 'Success', ActionID: 'login-1', Message: 'Authentication accepted' });
    expect(messages[1]!.get('Ping')).toBe('Pong');
    const cdrs = messages.filter((m) => m.event === 'Cdr');
    expect(cdrs).toHaveLength(1);
    expect(cdrs[0]!.get('uniqueid')).toBe('1795320443.0');
    expect(cdrs[0]!.get('DestinationChannel')).toBe('');
    expect(messages.at(-1)!.toObject()).toEqual({ Response: 'Goodbye', ActionID: 'logoff-1', Message: 'Thanks for all the fish.' });
  });

  test('split at every byte boundary, each capture yields the same messages as read whole', () => {
    for (const name of ['01-pjsip-answer.rx.ami', '02-chansip-answer.rx.ami', '03-pjsip-a2blike-dial.rx.ami']) {
      const bytes = fixture(name);
      const whole = JSON.stringify(frame([bytes]).messages.map((m) => m.lines));
      // Every boundary of the banner, the first responses and the Cdr event; a stride elsewhere (the framer keeps
      // no state across messages that a later boundary could reach differently).
      const cdrAt = bytes.indexOf('Event: Cdr');
      for (let i = 1; i < bytes.length; i++) {
        if (i > 300 && (i < cdrAt - 8 || i > cdrAt + 900) && i % 53 !== 0) continue;
        const got = JSON.stringify(frame([bytes.subarray(0, i), bytes.subarray(i)]).messages.map((m) => m.lines));
        if (got !== whole) expect.fail(`${name}: split at byte ${i} framed differently`);
      }
    }
  });

  test('one byte at a time, and a UTF-8 character split between chunks', () => {
    const bytes = fixture('02-chansip-answer.rx.ami');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    expect(frame(chunks).messages.map((m) => m.lines)).toEqual(frame([bytes]).messages.map((m) => m.lines));
    const utf = Buffer.from('Asterisk Call Manager/9.0.0\r\nEvent: Cdr\r\nCallerID: "Zoë" <100>\r\n\r\n');
    const at = utf.indexOf(Buffer.from('ë')) + 1;
    expect(frame([utf.subarray(0, at), utf.subarray(at)]).messages[0]!.get('CallerID')).toBe('"Zoë" <100>');
  });

  test('keys in any case are one key; repeated keys keep every value', () => {
    const { messages } = frame(['Asterisk Call Manager/9.0.0\r\nEvent: Newchannel\r\nUniqueid: 1.0\r\nLinkedid: 1.0\r\nOutput: a\r\nOutput: b\r\n\r\n']);
    const m = messages[0]!;
    expect(m.get('UniqueID')).toBe('1.0');
    expect(m.get('LINKEDID')).toBe('1.0');
    expect(m.getAll('Output')).toEqual(['a', 'b']);
    expect(canonicalKey('uniqueid')).toBe('UniqueID');
    expect(canonicalKey('X-Custom')).toBe('X-Custom');
    expect(m.toObject()).toMatchObject({ UniqueID: '1.0', LinkedID: '1.0' });
  });

  test('bare LF line ends and stray blank lines are tolerated', () => {
    const { messages } = frame(['Asterisk Call Manager/9.0.0\n\r\n\nResponse: Success\nActionID: 1\n\n']);
    expect(messages.map((m) => m.toObject())).toEqual([{ Response: 'Success', ActionID: '1' }]);
  });

  test('a non-Asterisk banner and an endless message are protocol errors', () => {
    expect(() => frame(['SSH-2.0-OpenSSH_9.6\r\n'])).toThrowError(/unexpected banner/);
    const f = new AmiFramer({ banner: () => undefined, message: () => undefined }, { maxMessageChars: 100 });
    f.push('Asterisk Call Manager/9.0.0\r\n');
    let err: unknown;
    try { for (let i = 0; i < 20; i++) f.push('Key: 0123456789\r\n'); } catch (e) { err = e; }
    expect(isGwError(err, 'GW_ERR_AMI_PROTOCOL')).toBe(true);
    const g = new AmiFramer({ banner: () => undefined, message: () => undefined }, { maxMessageChars: 100 });
    expect(() => g.push(`Asterisk Call Manager/9.0.0\r\n${'x'.repeat(200)}`)).toThrowError(/longer than 100/);
  });

  test('serialising refuses values that would inject a second action', () => {
    expect(serializeMessage([['Action', 'Ping'], ['ActionID', 'a1']])).toBe('Action: Ping\r\nActionID: a1\r\n\r\n');
    expect(() => serializeMessage([['Action', 'Command'], ['Command', 'core show version\r\n\r\nAction: Originate']])).toThrowError(/line break/);
  });
});
