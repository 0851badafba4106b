/** The harness's own rules, without booting anything: verdicts, forwards, missing tools. */
import { describe, expect, it } from 'vitest';
import { interpretRun, missingVmTools, netdevOption } from './vm.js';

const TOKEN = '0123456789abcdef';
const run = (console: string, exitCode: number | null, timedOut = false) => interpretRun(console, '', exitCode, timedOut, TOKEN, 1000);

describe('interpretRun', () => {
  it('passes only when the console says PASS with the run token and the exit code says status 0', () => {
    const passed = run(`VM-READY boot=3.1s\nVM-REPORT size=42\nVM-TIME scenario=2.5s\nVM-RESULT ${TOKEN} PASS\n`, 1);
    expect(passed).toMatchObject({ passed: true, marker: 'PASS', guestStatus: 0, bootSeconds: 3.1, scenarioSeconds: 2.5 });
    expect(passed.reports).toEqual({ size: '42' });
  });

  it('fails when the console and the exit code disagree, or either is missing', () => {
    expect(run(`VM-RESULT ${TOKEN} PASS\n`, 3).passed).toBe(false);
    expect(run(`VM-RESULT ${TOKEN} FAIL status=0\n`, 1).passed).toBe(false);
    expect(run('no verdict at all\n', 1).passed).toBe(false);
    expect(run(`VM-RESULT ${TOKEN} PASS\n`, 0).passed).toBe(false);
    expect(run(`VM-RESULT ${TOKEN} PASS\n`, null).passed).toBe(false);
  });

  it('ignores a verdict line without this run token (a scenario echoing one)', () => {
    const spoofed = run('VM-RESULT fedcba9876543210 PASS\n', 1);
    expect(spoofed.marker).toBeNull();
    expect(spoofed.passed).toBe(false);
  });

  it('never passes a run that hit the timeout', () => {
    expect(run(`VM-RESULT ${TOKEN} PASS\n`, 1, true).passed).toBe(false);
  });

  it('decodes isa-debug-exit statuses (2n+1) and leaves even exit codes undecoded', () => {
    expect(run('', 15).guestStatus).toBe(7);
    expect(run('', 2).guestStatus).toBeNull();
  });
});

describe('netdevOption', () => {
  it('forwards each guest port to its host target through socat, with no other way out', () => {
    const option = netdevOption(
      [
        { guestPort: 10809, hostTarget: 'tcp:127.0.0.1:4000' },
        { guestPort: 8080, hostTarget: 'unix:/tmp/x/control.sock' },
      ],
      '/tmp/x/socat.log',
    );
    expect(option.split(',')).toEqual([
      'user',
      'id=net0',
      'restrict=on',
      'guestfwd=tcp:10.0.2.100:10809-cmd:socat -b 262144 -lf /tmp/x/socat.log - TCP:127.0.0.1:4000',
      'guestfwd=tcp:10.0.2.100:8080-cmd:socat -b 262144 -lf /tmp/x/socat.log - UNIX-CONNECT:/tmp/x/control.sock',
    ]);
  });

  it('refuses targets off this machine, unsafe paths and duplicate ports', () => {
    expect(() => netdevOption([{ guestPort: 1, hostTarget: 'tcp:10.1.2.3:80' }], '/tmp/l')).toThrow(/127\.0\.0\.1/);
    expect(() => netdevOption([{ guestPort: 1, hostTarget: 'unix:/tmp/a,b.sock' }], '/tmp/l')).toThrow(/only/);
    expect(() => netdevOption([{ guestPort: 1, hostTarget: 'unix:relative.sock' }], '/tmp/l')).toThrow(/absolute/);
    const twice = [
      { guestPort: 5, hostTarget: 'tcp:127.0.0.1:1' as const },
      { guestPort: 5, hostTarget: 'tcp:127.0.0.1:2' as const },
    ];
    expect(() => netdevOption(twice, '/tmp/l')).toThrow(/twice/);
  });
});

describe('missingVmTools', () => {
  it('names a missing tool, its package and the apt-get line', () => {
    const message = missingVmTools({ sh: 'dash', 'no-such-tool-for-vm-tests': 'made-up-package' });
    expect(message).toContain('no-such-tool-for-vm-tests (package made-up-package)');
    expect(message).toContain('apt-get install -y --no-install-recommends made-up-package');
    expect(message).not.toContain('dash');
  });

  it('says nothing when every tool is there', () => {
    expect(missingVmTools({ sh: 'dash' })).toBe('');
  });
});
