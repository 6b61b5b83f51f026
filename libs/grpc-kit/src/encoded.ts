import type { DescMessage } from '@bufbuild/protobuf';

/**
 * A response already in wire form. A handler on a hot path may write its message's bytes
 * itself (a hand-written encoder, tested against protobuf-es) and return them wrapped in
 * this; the kit sends them as they are instead of building and encoding a message.
 */
export class Encoded<Schema extends DescMessage = DescMessage> {
  constructor(
    readonly schema: Schema,
    readonly bytes: Uint8Array,
  ) {}
}

export function encoded<Schema extends DescMessage>(schema: Schema, bytes: Uint8Array): Encoded<Schema> {
  return new Encoded(schema, bytes);
}
