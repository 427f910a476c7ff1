// Which eventfds fired, told to the device thread without blocking it: a
// typed face over the addon's watcher (one epoll thread per watcher, see
// native/tsvmm_native.cc). KVM signals an ioeventfd when the guest writes a
// registered notify address, without an exit to userspace; the watcher's
// thread drains the eventfd and `fired` runs on this thread's event loop with
// the tokens of every fd that fired since the previous call, each once.
//
// Reports coalesce: many signals between two calls are one call, so `fired`
// must treat a token as "look at this queue", not as a count. Only one
// report is queued at a time, and a signal arriving while `fired` runs gives
// another call after it. An open watcher does not keep the process alive;
// close() it when the device goes away (the thread's teardown closes any left
// open). After close(), `fired` is never called, even for signals already
// drained.

import { check, native } from '../../shared/native';

const MAX_TOKEN = 0xffff_ffff;

export class EventWatcher {
  private handle: number | undefined;
  private readonly watched = new Map<number, number>();

  constructor(fired: (tokens: readonly number[]) => void) {
    if (typeof fired !== 'function') throw new TypeError('EventWatcher needs a callback');
    this.handle = check('event watcher create', native().watcherCreate((tokens) => {
      try {
        fired(tokens);
      } catch (error) {
        // Thrown from a native callback, an exception would only be printed as
        // a warning; rethrown from a microtask it is an uncaught exception.
        queueMicrotask(() => { throw error; });
      }
    }));
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  /** The fds being watched and their tokens. */
  get fds(): ReadonlyMap<number, number> {
    return this.watched;
  }

  /** Watches `fd` (an eventfd; the watcher makes it non-blocking and reads it) and reports it as `token`. */
  add(fd: number, token: number): void {
    const handle = this.open('add');
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fff_ffff) throw new RangeError(`EventWatcher.add: bad fd ${fd}`);
    if (!Number.isInteger(token) || token < 0 || token > MAX_TOKEN) {
      throw new RangeError(`EventWatcher.add: token ${token} is not an integer from 0 to ${MAX_TOKEN}`);
    }
    if (this.watched.has(fd)) throw new RangeError(`EventWatcher.add: fd ${fd} is already watched (token ${this.watched.get(fd)})`);
    check('event watcher add', native().watcherAdd(handle, fd, token), `fd ${fd}, token ${token}`);
    this.watched.set(fd, token);
  }

  /** Stops watching `fd`; once this returns the fd may be closed. A report already queued may still name its token. */
  remove(fd: number): void {
    const handle = this.open('remove');
    if (!this.watched.has(fd)) throw new RangeError(`EventWatcher.remove: fd ${fd} is not watched`);
    this.watched.delete(fd);
    check('event watcher remove', native().watcherRemove(handle, fd), `fd ${fd}`);
  }

  /** Stops the thread and joins it; idempotent. The watched fds stay open (they are the caller's). */
  close(): void {
    if (this.handle === undefined) return;
    const handle = this.handle;
    this.handle = undefined;
    this.watched.clear();
    check('event watcher close', native().watcherClose(handle));
  }

  private open(operation: string): number {
    if (this.handle === undefined) throw new RangeError(`EventWatcher.${operation}: the watcher is closed`);
    return this.handle;
  }
}
