import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { shellQuote } from '../../../src/format/shell-quote.js';

/** What /bin/sh makes of a printed command line: its words, one per line of output. */
function wordsOf(line: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `for w in ${line}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8', timeout: 10_000 });
  return out.split('\0').slice(0, -1);
}

it('leaves plain paths bare and quotes the rest so that the shell reads back exactly the argument', () => {
  expect(shellQuote('/run/nbd-remapper/control.sock')).toBe('/run/nbd-remapper/control.sock');
  expect(shellQuote('/tmp/my dir/n&x.sock')).toBe(`'/tmp/my dir/n&x.sock'`);
  expect(shellQuote('')).toBe(`''`);
  for (const arg of ['/tmp/my dir/n&x.sock', "it's", 'a;b', '$HOME', '`id`', '*', 'tab\there', '']) {
    expect(wordsOf(`x ${shellQuote(arg)} y`)).toEqual(['x', arg, 'y']);
  }
});

it('round-trips any printable argument through /bin/sh', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 20, unit: fc.constantFrom(...' !"#$%&\'()*;<>?[\\]^`{|}~azAZ09/.-_:=,@+%\t'.split('')) }), (arg) => {
      expect(wordsOf(shellQuote(arg))).toEqual([arg]);
    }),
    { numRuns: 60 },
  );
});
