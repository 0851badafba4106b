import { describe, expect, it } from 'vitest';
import { contextNameProblem } from '../src/meta-context-query.js';

describe('contextNameProblem (spec, "Metadata querying": which namespaces a server may offer)', () => {
  it('accepts base, nbd-server, registered (qemu) and experimental (x-…) namespaces', () => {
    for (const name of ['base:allocation', 'nbd-server:anything', 'qemu:dirty-bitmap:b0', 'x-nbd-remapper:written', 'x-a:b']) {
      expect(contextNameProblem(name), name).toBeUndefined();
    }
  });

  it('refuses an unregistered namespace, a missing namespace or leaf', () => {
    expect(contextNameProblem('nbd-remapper:written')).toMatch(/namespace nbd-remapper is neither/);
    expect(contextNameProblem('allocation')).toMatch(/namespace:leaf/);
    expect(contextNameProblem(':leaf')).toMatch(/namespace:leaf/);
    expect(contextNameProblem('x-ns:')).toMatch(/needs a leaf/);
  });
});
