import { isUtf8 } from 'node:buffer';

/**
 * Protobuf wire primitives for inference's direct codecs (predict-wire.ts, infer-wire.ts).
 * The decoders read only the encoding protobuf-es itself writes for the fields the hot path
 * uses; on anything else they throw NotCanonical and the caller hands the bytes to
 * protobuf-es, which decodes (or refuses) them exactly as before.
 */
export class NotCanonical extends Error {}

export const WIRE = { varint: 0, fixed64: 1, len: 2, fixed32: 5 } as const;

export function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

/** Reads a message's fields from `pos` to `end` of one buffer. */
export class WireReader {
  readonly buf: Buffer;
  constructor(
    bytes: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** A varint below 2^53 (tags, lengths, non-negative int32/int64); longer ones are not read here. */
  varint(): number {
    const buf = this.buf;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new NotCanonical();
      const byte = buf[this.pos++] as number;
      value += (byte & 127) * scale;
      if (byte < 128) return value;
      scale *= 128;
    }
    throw new NotCanonical();
  }

  /** A non-negative int32 (negative ones take ten bytes and go to protobuf-es). */
  int32(): number {
    const value = this.varint();
    if (value > 0x7fffffff) throw new NotCanonical();
    return value;
  }

  /** The end offset of a length-delimited field whose length comes next. */
  sub(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.end) throw new NotCanonical();
    return end;
  }

  string(): string {
    const end = this.sub();
    const start = this.pos;
    this.pos = end;
    const buf = this.buf;
    for (let i = start; i < end; i++) {
      if ((buf[i] as number) >= 128) {
        if (!isUtf8(buf.subarray(start, end))) throw new NotCanonical();
        return buf.toString('utf8', start, end);
      }
    }
    return buf.toString('latin1', start, end);
  }

  /** A bytes field as a view of the received buffer (protobuf-es also returns a view). */
  bytes(): Uint8Array {
    const end = this.sub();
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, end - this.pos);
    this.pos = end;
    return view;
  }

  /** A packed repeated double field (its length next). */
  doubles(): number[] {
    const end = this.sub();
    if ((end - this.pos) % 8 !== 0) throw new NotCanonical();
    const values = new Array<number>((end - this.pos) / 8);
    for (let i = 0; this.pos < end; i++, this.pos += 8) values[i] = this.buf.readDoubleLE(this.pos);
    return values;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new NotCanonical();
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }
}

/**
 * Reads a whole message with `field` (called with each tag; it reads that field's value or
 * throws NotCanonical): the message, or undefined when the bytes are not what it reads.
 */
export function readMessage<T>(bytes: Uint8Array, message: T, field: (r: WireReader, tag: number) => void) {
  try {
    const r = new WireReader(bytes, 0, bytes.length);
    while (r.pos < r.end) field(r, r.varint());
    return message;
  } catch (err) {
    if (err instanceof NotCanonical) return undefined;
    throw err;
  }
}

/** Bytes of a varint below 2^53. */
export function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Bytes of a length-delimited field: its tag, its length and its content. */
export function fieldSize(contentLength: number): number {
  return 1 + varintSize(contentLength) + contentLength;
}

/** Bytes of an int32 varint (negative ones are sign-extended to ten bytes). */
export function int32Size(value: number): number {
  return value < 0 ? 10 : varintSize(value);
}

/** Writes into a buffer sized beforehand (the encoders compute every length first). */
export class WireWriter {
  pos = 0;
  readonly buf: Buffer;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(value: number): void {
    const buf = this.buf;
    while (value >= 128) {
      buf[this.pos++] = (value % 128) | 128;
      value = Math.floor(value / 128);
    }
    buf[this.pos++] = value;
  }

  int32(value: number): void {
    if (value >= 0) {
      this.varint(value);
      return;
    }
    // Two's complement over 64 bits: the low 32 bits, then ones.
    let low = value >>> 0;
    for (let i = 0; i < 4; i++) {
      this.buf[this.pos++] = (low & 127) | 128;
      low >>>= 7;
    }
    this.buf[this.pos++] = low | 0x70 | 128;
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = 0xff;
    this.buf[this.pos++] = 0x01;
  }

  /** A tag and a length: the header of a length-delimited field. */
  header(fieldTag: number, length: number): void {
    this.buf[this.pos++] = fieldTag;
    this.varint(length);
  }

  /** A string field; `bytes` is its UTF-8 form (measured beforehand). */
  bytes(fieldTag: number, bytes: Uint8Array): void {
    this.header(fieldTag, bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  double(value: number): void {
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  done(): Buffer {
    if (this.pos !== this.buf.length)
      throw new Error(`wire writer: wrote ${this.pos} bytes of ${this.buf.length}`);
    return this.buf;
  }
}

export const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
