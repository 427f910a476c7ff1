// Device state for snapshots: every model that has state hands it out as
// plain, JSON-able data and takes it back in place (crosvm's Suspendable,
// Cloud Hypervisor's Snapshottable). Restoring in place keeps every wire to
// the model (its bus entry, its interrupt line, the board's registry) intact.

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

/** The fields `names` of `source`, as a plain object (one field list per device instead of hand-copied fields). */
export function pickFields<T extends object, K extends keyof T>(source: T, names: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const name of names) picked[name] = source[name];
  return picked;
}

/** Copies the fields `names` of `state` onto `target`. */
export function assignFields<T extends object, K extends keyof T>(target: T, state: Pick<T, K>, names: readonly K[]): void {
  for (const name of names) target[name] = state[name];
}
