// Assembles small ELF64 images in memory for the loader tests: a 64-byte
// header, the program headers right after it, then each segment's bytes.
// Every field can be overridden so a test can break exactly one thing.

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const EM_X86_64 = 62;
const EHDR_BYTES = 64;
const PHDR_BYTES = 56;

export interface SegmentSpec {
  type: number;
  paddr?: number;
  data: Uint8Array;
  /** Defaults to data.length. */
  memsz?: number;
  /** Defaults to data.length; set larger to point past the file. */
  filesz?: number;
  align?: number;
}

export interface ElfSpec {
  entry: bigint | number;
  segments: SegmentSpec[];
  elfClass?: number;
  endianness?: number;
  machine?: number;
  phentsize?: number;
  /** Overrides e_phoff (default: right after the header). */
  phoff?: bigint;
}

export function buildElf(spec: ElfSpec): Uint8Array {
  const headersEnd = EHDR_BYTES + spec.segments.length * PHDR_BYTES;
  const offsets: number[] = [];
  let size = headersEnd;
  for (const segment of spec.segments) {
    offsets.push(size);
    size += segment.data.length;
  }
  const image = new Uint8Array(size);
  const view = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 2, spec.endianness ?? 1, 1 /* EV_CURRENT */]);
  view.setUint16(16, 2, true); // ET_EXEC
  view.setUint16(18, spec.machine ?? EM_X86_64, true);
  view.setUint32(20, 1, true); // e_version
  view.setBigUint64(24, BigInt(spec.entry), true);
  view.setBigUint64(32, spec.phoff ?? BigInt(EHDR_BYTES), true);
  view.setUint16(52, EHDR_BYTES, true);
  view.setUint16(54, spec.phentsize ?? PHDR_BYTES, true);
  view.setUint16(56, spec.segments.length, true);
  spec.segments.forEach((segment, i) => {
    const at = EHDR_BYTES + i * PHDR_BYTES;
    view.setUint32(at, segment.type, true);
    view.setUint32(at + 4, 0x5, true); // PF_R | PF_X
    view.setBigUint64(at + 8, BigInt(offsets[i]), true);
    view.setBigUint64(at + 16, BigInt(segment.paddr ?? 0), true);
    view.setBigUint64(at + 24, BigInt(segment.paddr ?? 0), true);
    view.setBigUint64(at + 32, BigInt(segment.filesz ?? segment.data.length), true);
    view.setBigUint64(at + 40, BigInt(segment.memsz ?? segment.data.length), true);
    view.setBigUint64(at + 48, BigInt(segment.align ?? 4), true);
    image.set(segment.data, offsets[i]);
  });
  return image;
}

/** One ELF note: namesz, descsz, type, then name and descriptor each padded to `align`. */
export function note(name: string, type: number, desc: Uint8Array, align = 4): Uint8Array {
  const pad = (n: number) => Math.ceil(n / align) * align;
  const nameBytes = Uint8Array.from(name, (c) => c.charCodeAt(0));
  const bytes = new Uint8Array(12 + pad(nameBytes.length) + pad(desc.length));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, nameBytes.length, true);
  view.setUint32(4, desc.length, true);
  view.setUint32(8, type, true);
  bytes.set(nameBytes, 12);
  bytes.set(desc, 12 + pad(nameBytes.length));
  return bytes;
}

export function u32le(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return bytes;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
