import { describe, expect, it } from 'vitest';
import {
  OptionPayloadError,
  decodeInfoRequest,
  decodeMetaContextRequest,
  encodeInfoRequest,
  encodeMetaContextRequest,
} from '../src/index.js';
import { ascii, hex } from './hex.js';

describe('NBD_OPT_INFO / NBD_OPT_GO data', () => {
  it('decodes u32 name length, name, u16 count, u16 types', () => {
    const bytes = hex('00000003', ascii('dst'), '0002', '0001', '0003');
    expect(decodeInfoRequest(bytes)).toEqual({ name: 'dst', infoTypes: [1, 3] });
    expect(encodeInfoRequest('dst', [1, 3])).toEqual(bytes);
  });

  it('accepts the empty name with no information requests', () => {
    expect(decodeInfoRequest(hex('00000000', '0000'))).toEqual({ name: '', infoTypes: [] });
  });

  it.each([
    ['empty payload', ''],
    ['name length overruns the payload', '00000009' + ascii('dst') + '0000'],
    ['name length past 4 GiB', 'ffffffff' + ascii('dst') + '0000'],
    ['missing information count', '00000003' + ascii('dst')],
    ['count larger than the list', '00000003' + ascii('dst') + '0002' + '0001'],
    ['trailing bytes after the list', '00000003' + ascii('dst') + '0001' + '0001' + 'ff'],
    ['name that is not UTF-8', '00000002' + 'c328' + '0000'],
    ['name with a NUL', '00000002' + '6100' + '0000'],
  ])('rejects %s with OptionPayloadError', (_what, payload) => {
    expect(() => decodeInfoRequest(hex(payload))).toThrow(OptionPayloadError);
  });

  it('rejects a name over 4096 bytes even when the payload holds it', () => {
    const name = Buffer.alloc(4097, 0x61);
    const bytes = Buffer.concat([hex('00001001'), name, hex('0000')]);
    expect(() => decodeInfoRequest(bytes)).toThrow(/4096/);
  });
});

describe('NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data', () => {
  it('decodes u32 name length, name, u32 count, then length-prefixed queries', () => {
    const bytes = hex('00000003', ascii('dst'), '00000002', '00000005', ascii('base:'), '0000000f', ascii('base:allocation'));
    expect(decodeMetaContextRequest(bytes)).toEqual({ exportName: 'dst', queries: ['base:', 'base:allocation'] });
    expect(encodeMetaContextRequest('dst', ['base:', 'base:allocation'])).toEqual(bytes);
  });

  it('decodes zero queries', () => {
    expect(decodeMetaContextRequest(hex('00000000', '00000000'))).toEqual({ exportName: '', queries: [] });
  });

  it.each([
    ['missing query count', '00000003' + ascii('dst')],
    ['query count that cannot fit', '00000003' + ascii('dst') + 'ffffffff' + '00000000'],
    ['query length overrun', '00000003' + ascii('dst') + '00000001' + '00000010' + ascii('base:')],
    ['fewer queries than counted', '00000003' + ascii('dst') + '00000002' + '00000005' + ascii('base:')],
    ['trailing bytes', '00000003' + ascii('dst') + '00000000' + '00'],
    ['query that is not UTF-8', '00000000' + '00000001' + '00000001' + 'ff'],
  ])('rejects %s with OptionPayloadError', (_what, payload) => {
    expect(() => decodeMetaContextRequest(hex(payload))).toThrow(OptionPayloadError);
  });
});
