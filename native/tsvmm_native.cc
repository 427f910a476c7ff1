// tsvmm's whole native surface: thin, generic system calls for a KVM VMM.
//
// Ioctl numbers, struct layouts and every policy decision live in TypeScript
// (src/shared/kvm-abi.ts, src/shared/native.ts). Functions here never throw
// for a failed system call: they return -errno so the hot KVM_RUN path needs
// no exception machinery, and TypeScript turns the errno into a KvmError that
// names the ioctl. They throw TypeError only for malformed arguments.
//
// The addon is loaded by the main thread and by every vCPU worker. Each
// environment (thread) has its own instance data: the mappings it created,
// unmapped by an environment cleanup hook if the thread ends without doing it.
// The kick signal handler is process-wide and installed once.
//
// Event watchers (watcherCreate/Add/Remove/Close) are the one piece with a
// thread of its own: an epoll thread per watcher that drains the eventfds
// KVM signals (ioeventfd) and reports their tokens to JavaScript on the
// thread that created the watcher, through a threadsafe function.

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

// A real-time signal nobody else in Node uses (SIGUSR1 is the inspector's,
// SIGPROF the profiler's). Its handler does nothing: its only purpose is to
// make a blocking KVM_RUN return EINTR.
int KickSignal() { return SIGRTMIN + 3; }

void NoopSignalHandler(int) {}

std::once_flag kick_handler_once;
int kick_handler_errno = 0;

void InstallKickHandler() {
  std::call_once(kick_handler_once, [] {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = NoopSignalHandler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    if (sigaction(KickSignal(), &action, nullptr) != 0) kick_handler_errno = errno;
  });
}

struct Watcher;

// Mappings created through one environment; unmapped when it is torn down.
// Watchers it created, by handle (each closed by its own cleanup hook).
struct EnvironmentState {
  struct Mapping {
    void* address;
    size_t length;
  };
  std::vector<Mapping> mappings;
  std::map<uint32_t, Watcher*> watchers;
  uint32_t next_watcher = 1;
};

void CleanupEnvironment(Napi::Env, EnvironmentState* state) {
  // state->watchers is empty by now: each watcher's own cleanup hook (see
  // WatcherCreate), which runs earlier, has closed it and left the registry.
  for (const auto& mapping : state->mappings) munmap(mapping.address, mapping.length);
  delete state;
}

EnvironmentState* StateOf(Napi::Env env) { return env.GetInstanceData<EnvironmentState>(); }

int64_t ToInt64(const Napi::Value& value, const char* what) {
  if (value.IsNumber()) return value.As<Napi::Number>().Int64Value();
  if (value.IsBigInt()) {
    bool lossless = false;
    return value.As<Napi::BigInt>().Int64Value(&lossless);
  }
  Napi::TypeError::New(value.Env(), std::string(what) + " must be a number or a bigint")
      .ThrowAsJavaScriptException();
  return 0;
}

uint64_t ToUint64(const Napi::Value& value, const char* what) {
  if (value.IsBigInt()) {
    bool lossless = false;
    return value.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (value.IsNumber()) return static_cast<uint64_t>(value.As<Napi::Number>().Int64Value());
  Napi::TypeError::New(value.Env(), std::string(what) + " must be a number or a bigint")
      .ThrowAsJavaScriptException();
  return 0;
}

// The address of a typed array's or ArrayBuffer's bytes, or nullptr (and a
// pending TypeError) when the value is neither.
void* BytesOf(const Napi::Value& value, size_t* length) {
  if (value.IsTypedArray()) {
    auto array = value.As<Napi::TypedArray>();
    auto buffer = array.ArrayBuffer();
    *length = array.ByteLength();
    return static_cast<uint8_t*>(buffer.Data()) + array.ByteOffset();
  }
  if (value.IsDataView()) {
    auto view = value.As<Napi::DataView>();
    *length = view.ByteLength();
    return static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  }
  if (value.IsArrayBuffer()) {
    auto buffer = value.As<Napi::ArrayBuffer>();
    *length = buffer.ByteLength();
    return buffer.Data();
  }
  Napi::TypeError::New(value.Env(), "expected a TypedArray, DataView or ArrayBuffer")
      .ThrowAsJavaScriptException();
  return nullptr;
}

Napi::Value Result(Napi::Env env, long rc) {
  return Napi::Number::New(env, rc < 0 ? -errno : static_cast<double>(rc));
}

// open(path, flags) -> fd or -errno
Napi::Value Open(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) {
    Napi::TypeError::New(env, "open(path: string, flags: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = info[1].As<Napi::Number>().Int32Value();
  return Result(env, open(path.c_str(), flags | O_CLOEXEC));
}

// close(fd) -> 0 or -errno
Napi::Value Close(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return Result(env, close(info[0].As<Napi::Number>().Int32Value()));
}

// ioctl(fd, request, arg) -> result or -errno. `arg` is an integer (number or
// bigint) passed by value, or a TypedArray/DataView/ArrayBuffer whose bytes
// the kernel reads and writes in place.
Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long request = static_cast<unsigned long>(ToUint64(info[1], "request"));
  if (env.IsExceptionPending()) return env.Null();
  long rc;
  if (info.Length() < 3 || info[2].IsUndefined()) {
    rc = ioctl(fd, request, 0UL);
  } else if (info[2].IsNumber() || info[2].IsBigInt()) {
    unsigned long arg = static_cast<unsigned long>(ToUint64(info[2], "arg"));
    rc = ioctl(fd, request, arg);
  } else {
    size_t length = 0;
    void* bytes = BytesOf(info[2], &length);
    if (bytes == nullptr) return env.Null();
    rc = ioctl(fd, request, bytes);
  }
  return Result(env, rc);
}

// run(fd, request) -> result or -errno: KVM_RUN without argument parsing, for
// the hot loop of a vCPU worker.
Napi::Value Run(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long request = static_cast<unsigned long>(info[1].As<Napi::Number>().Int64Value());
  long rc = ioctl(fd, request, 0UL);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : static_cast<double>(rc));
}

// mmap(fd, length, prot, flags, offset) -> BigInt address, or a negative
// Number holding -errno. The mapping is not tied to any JavaScript object:
// it lives until munmap, and any thread may view it with view().
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t length = ToInt64(info[1], "length");
  int prot = info[2].As<Napi::Number>().Int32Value();
  int flags = info[3].As<Napi::Number>().Int32Value();
  int64_t offset = ToInt64(info[4], "offset");
  if (env.IsExceptionPending()) return env.Null();
  void* address = mmap(nullptr, static_cast<size_t>(length), prot, flags, fd, offset);
  if (address == MAP_FAILED) return Napi::Number::New(env, -errno);
  StateOf(env)->mappings.push_back({address, static_cast<size_t>(length)});
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(address)));
}

// munmap(address, length) -> 0 or -errno
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  uint64_t address = ToUint64(info[0], "address");
  int64_t length = ToInt64(info[1], "length");
  if (env.IsExceptionPending()) return env.Null();
  void* pointer = reinterpret_cast<void*>(address);
  int rc = munmap(pointer, static_cast<size_t>(length));
  if (rc == 0) {
    auto& mappings = StateOf(env)->mappings;
    mappings.erase(std::remove_if(mappings.begin(), mappings.end(),
                                  [pointer](const EnvironmentState::Mapping& m) { return m.address == pointer; }),
                   mappings.end());
  }
  return Result(env, rc);
}

// view(address, length) -> ArrayBuffer over existing memory, without copying
// and without ownership: the caller guarantees the mapping outlives the view.
// This is how every thread sees the same guest RAM and kvm_run pages.
Napi::Value View(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  uint64_t address = ToUint64(info[0], "address");
  int64_t length = ToInt64(info[1], "length");
  if (env.IsExceptionPending()) return env.Null();
  if (address == 0 || length <= 0) {
    Napi::RangeError::New(env, "view needs a non-null address and a positive length")
        .ThrowAsJavaScriptException();
    return env.Null();
  }
  return Napi::ArrayBuffer::New(env, reinterpret_cast<void*>(address), static_cast<size_t>(length));
}

// detach(arrayBuffer): cuts a view() off its memory before the memory is
// unmapped, so a typed array someone kept reads as empty instead of touching
// pages that are gone. A view already detached is left alone.
Napi::Value Detach(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "detach needs an ArrayBuffer from view()").ThrowAsJavaScriptException();
    return env.Null();
  }
  auto buffer = info[0].As<Napi::ArrayBuffer>();
  if (!buffer.IsDetached()) buffer.Detach();
  return env.Undefined();
}

// flock(fd, operation) -> 0 or -errno: an advisory lock on a disk image, so
// that a second tsvmm cannot open it for writing at the same time.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int operation = info[1].As<Napi::Number>().Int32Value();
  return Result(env, flock(fd, operation));
}

// fallocate(fd, mode, offset, length) -> 0 or -errno: punches holes for
// virtio-blk DISCARD and WRITE_ZEROES where the file system can.
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int mode = info[1].As<Napi::Number>().Int32Value();
  int64_t offset = ToInt64(info[2], "offset");
  int64_t length = ToInt64(info[3], "length");
  if (env.IsExceptionPending()) return env.Null();
  return Result(env, fallocate(fd, mode, offset, length));
}

// eventfd(initval, flags) -> fd or -errno
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  unsigned int initval = info[0].As<Napi::Number>().Uint32Value();
  int flags = info[1].As<Napi::Number>().Int32Value();
  return Result(env, eventfd(initval, flags | EFD_CLOEXEC));
}

// eventfdWrite(fd, value) -> 0 or -errno: signal an eventfd (irqfd trigger).
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t value = ToUint64(info[1], "value");
  if (env.IsExceptionPending()) return env.Null();
  ssize_t written = write(fd, &value, sizeof(value));
  if (written < 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, 0);
}

// ---------------------------------------------------------------------------
// Event watcher: one epoll thread that waits on eventfds and tells JavaScript
// which fired.
//
// The thread waits edge-triggered on every added fd plus a private wake
// eventfd. When an fd fires it reads the fd (8 bytes, non-blocking) until it
// is empty, adds the fd's token to a pending set and, unless a report is
// already queued, queues one call through the threadsafe function. The call
// runs on the creating thread's event loop, takes the whole pending set and
// calls callback(tokens). So signals coalesce: any number of writes to any
// number of fds between two reports give one report with each token once,
// and at most one report is queued at a time (the next can be queued while
// the callback runs, so a signal during the callback is never lost).
//
// Lifetime. The Watcher is freed by the threadsafe function's finalizer,
// which runs on the creating thread once the function is released and its
// queue drained, so a queued report never touches freed memory. Close (or the
// environment's teardown) stops the thread first: sets `stopping`, signals
// the wake fd, joins; then releases the function. After close no callback
// runs (queued reports see `closed` and are dropped).
//
// The function is unref'd: an open watcher does not keep the event loop
// alive (a VMM is kept alive by its vCPU workers, not by its notifiers).
// A watcher left open when its environment ends (process exit, worker
// exit) is closed by a per-watcher environment cleanup hook. That hook is
// added after the threadsafe function is created; Node runs cleanup hooks in
// reverse order of addition, so it stops the thread before the function's own
// teardown hook finalizes it (and frees the Watcher).

struct Watcher;
// Runs on the creating thread for each queued report (defined below).
void DeliverReport(Napi::Env env, Napi::Function callback, Watcher* watcher, std::nullptr_t*);
using WatcherTsfn = Napi::TypedThreadSafeFunction<Watcher, std::nullptr_t, DeliverReport>;

struct Watcher {
  uint32_t handle = 0;
  napi_env env = nullptr;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::thread thread;
  std::atomic<bool> stopping{false};
  WatcherTsfn tsfn;
  bool stopped = false;     // creating thread only
  bool hook_added = false;  // creating thread only

  std::mutex mutex;  // guards everything below
  std::unordered_map<int, uint32_t> tokens;  // fd -> token
  std::vector<uint32_t> pending;
  std::unordered_set<uint32_t> pending_set;
  bool queued = false;
  bool closed = false;
};

void DrainFd(int fd) {
  uint64_t value;
  for (int i = 0; i < 64; i++) {
    ssize_t n = read(fd, &value, sizeof(value));
    if (n > 0) continue;  // eventfd: one read empties it; the next says EAGAIN
    if (n < 0 && errno == EINTR) continue;
    break;  // EAGAIN (empty), EOF or an error: nothing more to read now
  }
}

// Plain N-API calls whose failures are ignored, not node-addon-api's
// wrappers: during an environment's teardown Node runs the event loop once
// more before the cleanup hooks (Environment::CleanupHandles), so a queued
// report can arrive when JavaScript can no longer run; a wrapper would try to
// throw there, and a failed throw is a fatal error.
void DeliverReport(Napi::Env env, Napi::Function callback, Watcher* watcher, std::nullptr_t*) {
  if (env == nullptr || callback.IsEmpty()) return;  // the function is being torn down
  std::vector<uint32_t> fired;
  {
    std::lock_guard<std::mutex> lock(watcher->mutex);
    watcher->queued = false;
    if (watcher->closed) return;
    fired.swap(watcher->pending);
    watcher->pending_set.clear();
  }
  if (fired.empty()) return;
  napi_value array, global, result;
  if (napi_create_array_with_length(env, fired.size(), &array) != napi_ok) return;
  for (size_t i = 0; i < fired.size(); i++) {
    napi_value token;
    if (napi_create_uint32(env, fired[i], &token) != napi_ok) return;
    if (napi_set_element(env, array, static_cast<uint32_t>(i), token) != napi_ok) return;
  }
  if (napi_get_undefined(env, &global) != napi_ok) return;
  // An exception from the callback stays pending; Node reports it when this returns.
  napi_call_function(env, global, callback, 1, &array, &result);
}

void WatcherThread(Watcher* watcher, WatcherTsfn tsfn) {
  // Signals belong to Node's threads: block them all here so a process
  // signal (SIGINT, the kick signal) is never taken by this thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  epoll_event events[64];
  while (!watcher->stopping.load(std::memory_order_acquire)) {
    int count = epoll_wait(watcher->epoll_fd, events, 64, -1);
    if (count < 0) {
      if (errno == EINTR) continue;
      break;  // EBADF/EINVAL cannot happen while the watcher is open
    }
    bool report = false;
    {
      std::lock_guard<std::mutex> lock(watcher->mutex);
      for (int i = 0; i < count; i++) {
        int fd = events[i].data.fd;
        if (fd == watcher->wake_fd) continue;
        // An fd removed after epoll_wait returned is skipped: remove() holds
        // the mutex, so once it returns this thread never reads that fd again
        // and the caller may close it.
        auto found = watcher->tokens.find(fd);
        if (found == watcher->tokens.end()) continue;
        DrainFd(fd);
        if (watcher->pending_set.insert(found->second).second) watcher->pending.push_back(found->second);
      }
      if (!watcher->pending.empty() && !watcher->queued && !watcher->closed) {
        watcher->queued = true;
        report = true;
      }
    }
    if (report && tsfn.NonBlockingCall(static_cast<std::nullptr_t*>(nullptr)) != napi_ok) {
      std::lock_guard<std::mutex> lock(watcher->mutex);
      watcher->queued = false;  // closing: nothing will be delivered any more
    }
  }
}

// Stops the thread and releases the function; idempotent. Creating thread only.
void StopWatcher(Watcher* watcher) {
  if (watcher->stopped) return;
  watcher->stopped = true;
  {
    std::lock_guard<std::mutex> lock(watcher->mutex);
    watcher->closed = true;
  }
  watcher->stopping.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t ignored = write(watcher->wake_fd, &one, sizeof(one));
  (void)ignored;
  if (watcher->thread.joinable()) watcher->thread.join();
  close(watcher->epoll_fd);
  close(watcher->wake_fd);
  watcher->epoll_fd = watcher->wake_fd = -1;
  watcher->tsfn.Release();  // the finalizer (FreeWatcher) deletes the Watcher later
}

void WatcherCleanupHook(void* arg) {
  auto* watcher = static_cast<Watcher*>(arg);
  auto* state = static_cast<EnvironmentState*>(nullptr);
  napi_get_instance_data(watcher->env, reinterpret_cast<void**>(&state));
  if (state != nullptr) state->watchers.erase(watcher->handle);
  watcher->hook_added = false;
  StopWatcher(watcher);
}

void FreeWatcher(Napi::Env, void*, Watcher* watcher) { delete watcher; }

Watcher* WatcherOf(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return nullptr;
  auto& watchers = StateOf(info.Env())->watchers;
  auto found = watchers.find(info[0].As<Napi::Number>().Uint32Value());
  return found == watchers.end() ? nullptr : found->second;
}

// watcherCreate(callback) -> handle (> 0) or -errno
Napi::Value WatcherCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "watcherCreate(callback: (tokens: number[]) => void)").ThrowAsJavaScriptException();
    return env.Null();
  }
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Napi::Number::New(env, -errno);
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    int error = errno;
    close(epoll_fd);
    return Napi::Number::New(env, -error);
  }
  epoll_event event;
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN;
  event.data.fd = wake_fd;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event) != 0) {
    int error = errno;
    close(epoll_fd);
    close(wake_fd);
    return Napi::Number::New(env, -error);
  }
  auto* state = StateOf(env);
  auto* watcher = new Watcher();
  watcher->env = env;
  watcher->epoll_fd = epoll_fd;
  watcher->wake_fd = wake_fd;
  watcher->handle = state->next_watcher++;
  // Unlimited queue (NonBlockingCall never waits), one thread reference: the
  // watcher thread uses the function until StopWatcher has joined it, and
  // StopWatcher then releases it once.
  watcher->tsfn = WatcherTsfn::New(env, info[0].As<Napi::Function>(), "tsvmm event watcher", 0, 1, watcher, FreeWatcher);
  if (static_cast<napi_threadsafe_function>(watcher->tsfn) == nullptr) {
    env.GetAndClearPendingException();
    close(epoll_fd);
    close(wake_fd);
    delete watcher;
    return Napi::Number::New(env, -ENOMEM);
  }
  watcher->tsfn.Unref(env);
  if (napi_add_env_cleanup_hook(env, WatcherCleanupHook, watcher) != napi_ok) {
    watcher->stopped = true;
    close(epoll_fd);
    close(wake_fd);
    watcher->tsfn.Release();  // its finalizer frees the watcher
    return Napi::Number::New(env, -ENOMEM);
  }
  watcher->hook_added = true;
  watcher->thread = std::thread(WatcherThread, watcher, watcher->tsfn);
  state->watchers[watcher->handle] = watcher;
  return Napi::Number::New(env, watcher->handle);
}

// watcherAdd(handle, fd, token) -> 0 or -errno. The fd is made non-blocking
// (the watcher reads it); EEXIST when it is already watched.
Napi::Value WatcherAdd(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  Watcher* watcher = WatcherOf(info);
  if (watcher == nullptr) return Napi::Number::New(env, -EBADF);
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "watcherAdd(handle, fd: number, token: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  int fd = info[1].As<Napi::Number>().Int32Value();
  uint32_t token = info[2].As<Napi::Number>().Uint32Value();
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return Napi::Number::New(env, -errno);
  if ((flags & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return Napi::Number::New(env, -errno);
  std::lock_guard<std::mutex> lock(watcher->mutex);
  if (watcher->tokens.count(fd) != 0) return Napi::Number::New(env, -EEXIST);
  watcher->tokens[fd] = token;
  epoll_event event;
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN | EPOLLET;
  event.data.fd = fd;
  // Added under the mutex: the thread cannot see an event for fd before its token.
  if (epoll_ctl(watcher->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    int error = errno;
    watcher->tokens.erase(fd);
    return Napi::Number::New(env, -error);
  }
  return Napi::Number::New(env, 0);
}

// watcherRemove(handle, fd) -> 0 or -errno (ENOENT when not watched). After it
// returns the watcher never reads the fd again: the caller may close it. A
// report already pending for its token may still arrive.
Napi::Value WatcherRemove(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  Watcher* watcher = WatcherOf(info);
  if (watcher == nullptr) return Napi::Number::New(env, -EBADF);
  if (info.Length() < 2 || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "watcherRemove(handle, fd: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  int fd = info[1].As<Napi::Number>().Int32Value();
  std::lock_guard<std::mutex> lock(watcher->mutex);
  if (watcher->tokens.erase(fd) == 0) return Napi::Number::New(env, -ENOENT);
  // The fd may already be closed (epoll dropped it then): not an error.
  if (epoll_ctl(watcher->epoll_fd, EPOLL_CTL_DEL, fd, nullptr) != 0 && errno != EBADF && errno != ENOENT) {
    return Napi::Number::New(env, -errno);
  }
  return Napi::Number::New(env, 0);
}

// watcherClose(handle) -> 0 or -EBADF. Stops and joins the thread, closes its
// epoll and wake fds (not the watched fds: they belong to the caller) and
// releases the function; no callback runs afterwards.
Napi::Value WatcherClose(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  Watcher* watcher = WatcherOf(info);
  if (watcher == nullptr) return Napi::Number::New(env, -EBADF);
  StateOf(env)->watchers.erase(watcher->handle);
  if (watcher->hook_added) {
    napi_remove_env_cleanup_hook(env, WatcherCleanupHook, watcher);
    watcher->hook_added = false;
  }
  StopWatcher(watcher);
  return Napi::Number::New(env, 0);
}

// eventfdRead(fd) -> BigInt counter (the eventfd is reset), or a negative
// Number holding -errno (EAGAIN: a non-blocking eventfd at zero).
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t value = 0;
  ssize_t n = read(fd, &value, sizeof(value));
  if (n < 0) return Napi::Number::New(env, -errno);
  if (n != sizeof(value)) return Napi::Number::New(env, -EIO);
  return Napi::BigInt::New(env, value);
}

// currentThread() -> BigInt handle of the calling thread, for kick().
Napi::Value CurrentThread(const Napi::CallbackInfo& info) {
  InstallKickHandler();
  static_assert(sizeof(pthread_t) <= sizeof(uint64_t), "pthread_t must fit in 64 bits");
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(pthread_self()));
}

// kick(threadHandle) -> 0 or -errno: interrupt a blocking system call
// (KVM_RUN) in that thread. The caller sets kvm_run.immediate_exit first, so a
// kick that lands just before KVM_RUN is entered is not lost.
Napi::Value Kick(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  InstallKickHandler();
  if (kick_handler_errno != 0) return Napi::Number::New(env, -kick_handler_errno);
  uint64_t handle = ToUint64(info[0], "thread");
  if (env.IsExceptionPending()) return env.Null();
  int rc = pthread_kill(static_cast<pthread_t>(handle), KickSignal());
  return Napi::Number::New(env, rc == 0 ? 0 : -rc);
}

// pageSize() -> the host page size.
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// strerror(errno) -> the C library's text for an errno.
Napi::Value StrError(const Napi::CallbackInfo& info) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return Napi::String::New(info.Env(), strerror(code));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallKickHandler();
  // Per-environment state; node-addon-api frees it through the finalizer,
  // which runs when the environment (main thread or worker) is torn down.
  env.SetInstanceData<EnvironmentState, CleanupEnvironment>(new EnvironmentState());
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("watcherCreate", Napi::Function::New(env, WatcherCreate, "watcherCreate"));
  exports.Set("watcherAdd", Napi::Function::New(env, WatcherAdd, "watcherAdd"));
  exports.Set("watcherRemove", Napi::Function::New(env, WatcherRemove, "watcherRemove"));
  exports.Set("watcherClose", Napi::Function::New(env, WatcherClose, "watcherClose"));
  exports.Set("currentThread", Napi::Function::New(env, CurrentThread, "currentThread"));
  exports.Set("kick", Napi::Function::New(env, Kick, "kick"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
  return exports;
}

}  // namespace

NODE_API_MODULE(tsvmm_native, Init)
