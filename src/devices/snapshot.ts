// Device state for snapshots: every model that has state hands it out as
// plain, JSON-able data and takes it back in place (crosvm's Suspendable,
// Cloud Hypervisor's Snapshottable). Restoring in place keeps every wire to
// the model (its bus entry, its interrupt line, the board's registry) intact.
//
// Each model describes its state once, as a field list (StateFields): every
// field of its state type with how a saved value is checked and how it maps
// to the model's live value. snapshot() and restore() both walk that list, so
// a field cannot be saved and forgotten on restore (or restored unchecked):
// the type makes a missing entry a compile error.

/** What a stateful device model offers. `restore` checks the state it is given and throws a TsvmmError for a bad one. */
export interface StatefulDevice<S = unknown> {
  snapshot(): S;
  restore(state: S): void;
}

/** A piece of VM state with a stable id: a board device, a vCPU, the in-kernel irqchip. */
export interface Snapshottable<S = unknown> extends StatefulDevice<S> {
  readonly id: string;
}

export function isSnapshottable(model: object): model is StatefulDevice<unknown> {
  const candidate = model as Partial<StatefulDevice<unknown>>;
  return typeof candidate.snapshot === 'function' && typeof candidate.restore === 'function';
}

/** The fields `names` of `source`, as a plain object (arrays and plain objects copied, so the two share nothing). */
export function pickFields<T extends object, K extends keyof T>(source: T, names: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const name of names) picked[name] = copyPlain(source[name]);
  return picked;
}

/** Copies the fields `names` of `state` onto `target` (arrays and plain objects copied). */
export function assignFields<T extends object, K extends keyof T>(target: T, state: Pick<T, K>, names: readonly K[]): void {
  for (const name of names) target[name] = copyPlain(state[name]);
}

/** A deep copy of plain data (arrays, plain objects, primitives). */
export function copyPlain<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyPlain) as T;
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) copy[key] = copyPlain(item);
    return copy as T;
  }
  return value;
}

// ---------------------------------------------------------------------------
// Field lists.

/**
 * One field of a device's saved state. `M` is the model's live value, `S`
 * the saved (JSON-able) one; they differ only where JSON cannot hold the
 * model's value (a bigint is saved as a decimal string).
 */
export interface StateField<M, S> {
  /** The problem with saved value `value` at `path` ("master.irr is 300, not a byte"), or undefined when it is acceptable. */
  check(value: unknown, path: string): string | undefined;
  /** The live value as saved: plain data that shares nothing with the model. */
  save(value: M): S;
  /** A checked saved value as the model holds it (shares nothing with the state). */
  load(value: S): M;
}

/**
 * A device's one field list: an entry for every field of its state type `S`
 * (a missing one does not compile), read from and written to the same-named
 * fields of the live record `M`.
 */
export type StateFields<M, S> = { readonly [K in keyof S]-?: StateField<K extends keyof M ? M[K] : never, S[K]> };

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return String(value);
}

/** A field kept as is (a number, a boolean, an array of them), checked by `accepts`; `expected` names what it must be. */
function plainField<T>(accepts: (value: unknown) => boolean, expected: string): StateField<T, T> {
  return {
    check: (value, path) => (accepts(value) ? undefined : `${path} is ${describe(value)}, not ${expected}`),
    save: (value) => copyPlain(value),
    load: (value) => copyPlain(value),
  };
}

/** An integer min..max. */
export function integerField(min: number, max: number, expected = `an integer ${min}..${max}`): StateField<number, number> {
  return plainField((value) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max, expected);
}

/** A byte, 0..0xff. */
export const byteField: StateField<number, number> = integerField(0, 0xff, 'a byte');

/** An unsigned 32-bit value with no bits outside `mask`. */
export function bitsField(mask: number, expected = `a value within the bits 0x${(mask >>> 0).toString(16)}`): StateField<number, number> {
  const accepts = (value: unknown) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff;
  return plainField((value) => accepts(value) && ((value as number) & ~mask) === 0, expected);
}

export const booleanField: StateField<boolean, boolean> = plainField((value) => typeof value === 'boolean', 'true or false');

/** A finite number (a time in ms, an offset). */
export const finiteNumberField: StateField<number, number> = plainField((value) => typeof value === 'number' && Number.isFinite(value), 'a finite number');

/** One of `values` (a string enum). */
export function oneOfField<T extends string>(values: readonly T[]): StateField<T, T> {
  return plainField((value) => values.includes(value as T), `one of ${values.join(', ')}`);
}

/** `field`, or null. */
export function nullableField<M, S>(field: StateField<M, S>): StateField<M | null, S | null> {
  return {
    check: (value, path) => (value === null ? undefined : field.check(value, path)),
    save: (value) => (value === null ? null : field.save(value)),
    load: (value) => (value === null ? null : field.load(value)),
  };
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A non-negative bigint, saved as a decimal string (JSON has no bigint). */
export const decimalBigIntField: StateField<bigint, string> = {
  check: (value, path) => (typeof value === 'string' && DECIMAL.test(value) ? undefined : `${path} is ${describe(value)}, not a non-negative integer as a decimal string`),
  save: (value) => value.toString(),
  load: (value) => BigInt(value),
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Exactly `length` bytes, saved as base64 (a register file, a table the guest writes). */
export function bytesField(length: number): StateField<Uint8Array, string> {
  return {
    check: (value, path) => {
      if (typeof value !== 'string' || !BASE64.test(value)) return `${path} is ${describe(value)}, not base64`;
      const bytes = Buffer.from(value, 'base64').length;
      return bytes === length ? undefined : `${path} holds ${bytes} bytes, not ${length}`;
    },
    save: (value) => Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'),
    load: (value) => new Uint8Array(Buffer.from(value, 'base64')),
  };
}

/** At most `maxLength` bytes, saved as base64 (data waiting in a queue). */
export function boundedBytesField(maxLength: number): StateField<Uint8Array, string> {
  const exact = bytesField(0);
  return {
    check: (value, path) => {
      if (typeof value !== 'string' || !BASE64.test(value)) return `${path} is ${describe(value)}, not base64`;
      const bytes = Buffer.from(value, 'base64').length;
      return bytes <= maxLength ? undefined : `${path} holds ${bytes} bytes, more than ${maxLength}`;
    },
    save: exact.save,
    load: exact.load,
  };
}

/** An array of `element`s: exactly `length.exactly` of them, or at most `length.atMost`. */
export function arrayField<M, S>(element: StateField<M, S>, length: { exactly: number } | { atMost: number }): StateField<M[], S[]> {
  return {
    check: (value, path) => {
      if (!Array.isArray(value)) return `${path} is ${describe(value)}, not an array`;
      const has = `${path} has ${value.length} ${value.length === 1 ? 'entry' : 'entries'}`;
      if ('exactly' in length && value.length !== length.exactly) return `${has}, not ${length.exactly}`;
      if ('atMost' in length && value.length > length.atMost) return `${has}, more than ${length.atMost}`;
      for (let i = 0; i < value.length; i++) {
        const problem = element.check(value[i], `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    },
    save: (value) => value.map((item) => element.save(item)),
    load: (value) => value.map((item) => element.load(item)),
  };
}

/** A nested record described by its own field list; `create` makes the live object a saved one is loaded into. */
export function recordField<M, S>(fields: StateFields<M, S>, create: () => M): StateField<M, S> {
  return {
    check: (value, path) => checkFields(value, fields, path),
    save: (value) => saveFields(value, fields),
    load: (value) => {
      const record = create();
      loadFields(record, value, fields);
      return record;
    },
  };
}

function names<M, S>(fields: StateFields<M, S>): (keyof S & string)[] {
  return Object.keys(fields) as (keyof S & string)[];
}

/** The state of `model` by its field list. */
export function saveFields<M, S>(model: M, fields: StateFields<M, S>): S {
  const state = {} as S;
  const live = model as Record<string, unknown>;
  for (const name of names(fields)) {
    const field = fields[name] as StateField<unknown, S[typeof name]>;
    state[name] = field.save(live[name]);
  }
  return state;
}

/**
 * The first problem with `state` as a state of `fields` (a field missing or
 * bad, a field the list does not have), or undefined when it has none.
 * `path` names the record in the message ('' for the top level).
 */
export function checkFields<M, S>(state: unknown, fields: StateFields<M, S>, path = ''): string | undefined {
  const where = path === '' ? 'the state' : path;
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return `${where} is ${state === null ? 'null' : describe(state)}, not an object`;
  for (const name of names(fields)) {
    const field = fields[name] as StateField<unknown, unknown>;
    const problem = field.check((state as Record<string, unknown>)[name], path === '' ? name : `${path}.${name}`);
    if (problem) return problem;
  }
  const unknown = Object.keys(state).find((key) => !Object.prototype.hasOwnProperty.call(fields, key));
  return unknown === undefined ? undefined : `${where} has a field '${unknown}' that this version does not know`;
}

/** Writes the checked `state` onto `model` by its field list. */
export function loadFields<M, S>(model: M, state: S, fields: StateFields<M, S>): void {
  const live = model as Record<string, unknown>;
  for (const name of names(fields)) {
    const field = fields[name] as StateField<unknown, S[typeof name]>;
    live[name] = field.load(state[name]);
  }
}

/** Checks all of `state`, then writes it onto `model`; a bad state throws `fail(problem)` and changes nothing. */
export function restoreFields<M, S>(model: M, state: unknown, fields: StateFields<M, S>, fail: (problem: string) => Error): void {
  const problem = checkFields(state, fields);
  if (problem) throw fail(problem);
  loadFields(model, state as S, fields);
}
