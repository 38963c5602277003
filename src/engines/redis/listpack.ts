/** Decodes a listpack blob (Redis 7 lists, small hashes/sets/zsets) into its entries. */
export function listpackEntries(lp: Uint8Array): Uint8Array[] {
  const view = new DataView(lp.buffer, lp.byteOffset, lp.byteLength);
  const out: Uint8Array[] = [];
  const enc = new TextEncoder();
  let p = 6; // total bytes (u32) + element count (u16)
  while (p < lp.length) {
    const b = lp[p];
    if (b === 0xff) return out;
    let entryLen: number;
    if ((b & 0x80) === 0) {
      out.push(enc.encode(String(b & 0x7f)));
      entryLen = 1;
    } else if ((b & 0xc0) === 0x80) {
      const n = b & 0x3f;
      out.push(lp.slice(p + 1, p + 1 + n));
      entryLen = 1 + n;
    } else if ((b & 0xe0) === 0xc0) {
      let v = ((b & 0x1f) << 8) | lp[p + 1];
      if (v >= 1 << 12) v -= 1 << 13;
      out.push(enc.encode(String(v)));
      entryLen = 2;
    } else if ((b & 0xf0) === 0xe0) {
      const n = ((b & 0x0f) << 8) | lp[p + 1];
      out.push(lp.slice(p + 2, p + 2 + n));
      entryLen = 2 + n;
    } else if (b === 0xf0) {
      const n = view.getUint32(p + 1, true);
      out.push(lp.slice(p + 5, p + 5 + n));
      entryLen = 5 + n;
    } else if (b === 0xf1) {
      out.push(enc.encode(String(view.getInt16(p + 1, true))));
      entryLen = 3;
    } else if (b === 0xf2) {
      let v = lp[p + 1] | (lp[p + 2] << 8) | (lp[p + 3] << 16);
      if (v >= 1 << 23) v -= 1 << 24;
      out.push(enc.encode(String(v)));
      entryLen = 4;
    } else if (b === 0xf3) {
      out.push(enc.encode(String(view.getInt32(p + 1, true))));
      entryLen = 5;
    } else if (b === 0xf4) {
      out.push(enc.encode(view.getBigInt64(p + 1, true).toString()));
      entryLen = 9;
    } else {
      throw new Error(`corrupt listpack: unknown entry encoding 0x${b.toString(16)}`);
    }
    const backlen = entryLen < 128
      ? 1
      : entryLen < 16384
      ? 2
      : entryLen < 2097152
      ? 3
      : entryLen < 268435456
      ? 4
      : 5;
    p += entryLen + backlen;
  }
  throw new Error("corrupt listpack: no end marker");
}
