import { describe, expect, it } from 'vitest';
import { RemapMap, type MapExtent } from '../../../src/remap/map.js';
import { identityDifferences, identityOf, mapFingerprint, parseIdentity, STATE_FORMAT, type StateIdentity } from '../../../src/state/state-identity.js';

const B = 4096;
const SIZE = 32 * B;
const disk = { size: SIZE, path: '/dev/test' };

/** A shift by four blocks, listed one block at a time. */
const blockwise: MapExtent[] = Array.from({ length: 28 }, (_, i) => ({ destOffset: i * B, length: B, diskOffset: (i + 4) * B }));

/** A header as a version that recorded maps as listed wrote it. */
function recordedAsListed(extents: MapExtent[]): StateIdentity {
  const parsed = parseIdentity(
    JSON.stringify({ format: 1, diskSize: SIZE, blockSize: B, extents, mapHash: mapFingerprint(SIZE, B, extents), diskPath: disk.path, createdAt: 'then' }),
  );
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

describe('a state and the map given', () => {
  it('records the merged map', () => {
    const id = identityOf(RemapMap.fromExtents(blockwise, SIZE, B), disk.path);
    expect(id.extents).toEqual([{ destOffset: 0, length: 28 * B, diskOffset: 4 * B }]);
    expect(identityDifferences(id, disk, RemapMap.fromExtents(blockwise, SIZE, B), undefined)).toEqual([]);
  });

  it('a state that recorded the map as listed belongs to the same map, merged or not', () => {
    const old = recordedAsListed(blockwise);
    expect(identityDifferences(old, disk, RemapMap.fromExtents(blockwise, SIZE, B), undefined)).toEqual([]);
    expect(identityDifferences(old, disk, RemapMap.fromExtents([{ destOffset: 0, length: 28 * B, diskOffset: 4 * B }], SIZE, B), undefined)).toEqual([]);
  });

  it('still refuses another map, and says the extents were counted merged', () => {
    const old = recordedAsListed(blockwise);
    const shiftedByFive = RemapMap.fromExtents([{ destOffset: 0, length: 27 * B, diskOffset: 5 * B }], SIZE, B);
    const [difference] = identityDifferences(old, disk, shiftedByFive, undefined);
    expect(difference).toMatch(/the map given differs from the state's map at extent 0 \(counting adjacent extents merged\): the state has \{destOffset 0, length 114688, diskOffset 16384\}/);
    const plain = identityDifferences(identityOf(RemapMap.identity(SIZE, B), disk.path), disk, shiftedByFive, undefined);
    expect(plain[0]).toMatch(/differs from the state's map at extent 0: /);
  });
});

describe('the frame seed', () => {
  const header = (fields: Record<string, unknown>): string =>
    JSON.stringify({ diskSize: SIZE, blockSize: B, extents: [], mapHash: mapFingerprint(SIZE, B, []), diskPath: disk.path, createdAt: 'then', ...fields });

  it('is drawn for each new state, and read back', () => {
    const a = identityOf(RemapMap.identity(SIZE, B), disk.path);
    const b = identityOf(RemapMap.identity(SIZE, B), disk.path);
    expect(a.format).toBe(STATE_FORMAT);
    expect(a.frameSeed).not.toBe(b.frameSeed);
    expect(parseIdentity(JSON.stringify(a))).toEqual(a);
  });

  it('is 0 in a format-1 state (written before there was one); a format-2 state without one, or a later format, is refused', () => {
    expect(parseIdentity(header({ format: 1 }))).toMatchObject({ format: 1, frameSeed: 0 });
    expect(parseIdentity(header({ format: 2 }))).toBe('the header lacks its frame seed');
    expect(parseIdentity(header({ format: 2, frameSeed: 2 ** 32 }))).toBe('the header lacks its frame seed');
    expect(parseIdentity(header({ format: 3, frameSeed: 7 }))).toMatch(/state format 3 is not one this version reads \(1, 2\)/);
  });
});
