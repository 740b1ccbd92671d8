import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/metrics.js';
import { parsePrometheusText } from './prom-text.js';

describe('strict Prometheus text parser (test helper)', () => {
  it('accepts well-formed exposition and reads labels with escapes', () => {
    const f = parsePrometheusText('# HELP x_total a counter\n# TYPE x_total counter\nx_total{a="q\\"uo\\\\te",b="2"} 3\n# TYPE g gauge\ng -1.5e3\n');
    expect(f.get('x_total')!.samples[0]).toEqual({ name: 'x_total', labels: { a: 'q"uo\\te', b: '2' }, value: 3 });
    expect(f.get('g')!.samples[0]!.value).toBe(-1500);
  });

  it.each([
    ['no trailing newline', '# TYPE a counter\na 1'],
    ['sample without family', 'a 1\n'],
    ['duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['bad value', '# TYPE a gauge\na one\n'],
    ['unterminated label', '# TYPE a gauge\na{x="1} 1\n'],
    ['bad escape', '# TYPE a gauge\na{x="\\t"} 1\n'],
    ['negative counter', '# TYPE a counter\na -1\n'],
    ['interleaved families', '# TYPE a gauge\n# TYPE b gauge\na 1\n'],
    ['family split in two blocks', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\n# HELP a again\n'],
    ['bad type', '# TYPE a countr\na 1\n'],
    ['bucket without le', '# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n'],
    ['histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
  ])('rejects %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });

  it('accepts everything createMetrics() exposes, with process metrics and every family touched', async () => {
    const m = createMetrics({ processMetrics: true, defaultLabels: { instance_name: 'gw "1"' } });
    m.sipRequests.inc({ method: 'INVITE' });
    m.sipResponses.inc({ code: '407', origin: 'local' });
    m.callSetupSeconds.observe(0.3);
    m.setDispatcherSource(() => [{ setId: 1, id: '7', uri: 'sip:10.0.0.7;transport=tcp', state: 'inactive', activeCalls: 0 }]);
    const families = parsePrometheusText(await m.text());
    expect(families.get('a2b_sip_requests_total')!.type).toBe('counter');
    expect(families.get('a2b_call_setup_seconds')!.type).toBe('histogram');
    expect(families.get('a2b_dispatcher_destination_state')!.samples.find((s) => s.labels.state === 'inactive')!.value).toBe(1);
    expect(families.get('a2b_process_cpu_seconds_total')).toBeDefined();
    // two registries do not collide
    expect(() => createMetrics({ processMetrics: true })).not.toThrow();
  });
});
