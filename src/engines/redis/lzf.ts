/** LZF decompression (liblzf), for RDB strings stored compressed (encoding 0xC3). */
export function lzfDecompress(input: Uint8Array, outLength: number): Uint8Array {
  const out = new Uint8Array(outLength);
  let ip = 0, op = 0;
  while (ip < input.length) {
    let ctrl = input[ip++];
    if (ctrl < 32) {
      ctrl++;
      if (op + ctrl > outLength || ip + ctrl > input.length) {
        throw new Error("corrupt LZF data (literal run)");
      }
      out.set(input.subarray(ip, ip + ctrl), op);
      ip += ctrl;
      op += ctrl;
    } else {
      let len = ctrl >> 5;
      let ref = op - ((ctrl & 0x1f) << 8) - 1;
      if (len === 7) len += input[ip++];
      ref -= input[ip++];
      len += 2;
      if (ref < 0 || op + len > outLength) throw new Error("corrupt LZF data (back reference)");
      for (let i = 0; i < len; i++) out[op++] = out[ref++];
    }
  }
  if (op !== outLength) throw new Error(`corrupt LZF data (${op} bytes, expected ${outLength})`);
  return out;
}
