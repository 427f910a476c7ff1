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
//
// The native vCPU exit loop (vcpuLoopCreate/Run/Wait, futexWake) is the one
// piece with a loop: hand-off mode "native" runs KVM_RUN, the claim check,
// the unclaimed answer and the exit channel's hand-off here, on the vCPU's
// worker thread, and returns to JavaScript for every other exit. Its layouts
// (kvm_run offsets, channel and doorbell slots, claim table, stats and control
// words) are passed in from TypeScript once, so the tables stay in one place.

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
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
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
struct VcpuLoop;

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
  std::map<uint32_t, VcpuLoop*> vcpu_loops;
  uint32_t next_vcpu_loop = 1;
};

void DeleteVcpuLoop(VcpuLoop* loop, bool release_references);

void CleanupEnvironment(Napi::Env, EnvironmentState* state) {
  // state->watchers is empty by now: each watcher's own cleanup hook (see
  // WatcherCreate), which runs earlier, has closed it and left the registry.
  for (const auto& mapping : state->mappings) munmap(mapping.address, mapping.length);
  // The environment is going away and frees its references itself.
  for (const auto& entry : state->vcpu_loops) DeleteVcpuLoop(entry.second, false);
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

// The object a JavaScript handle (the call's first argument) names in
// `handles`, or nullptr for a missing, non-numeric or unknown handle.
template <typename T>
T* HandleOf(const Napi::CallbackInfo& info, const std::map<uint32_t, T*>& handles) {
  if (info.Length() < 1 || !info[0].IsNumber()) return nullptr;
  auto found = handles.find(info[0].As<Napi::Number>().Uint32Value());
  return found == handles.end() ? nullptr : found->second;
}

Watcher* WatcherOf(const Napi::CallbackInfo& info) {
  return HandleOf(info, StateOf(info.Env())->watchers);
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

// ---------------------------------------------------------------------------
// Device wakers: how a vCPU in the native exit loop wakes the device thread
// after it parked. The device thread parks on the doorbell with
// Atomics.waitAsync, which no raw futex wake reaches (V8 keeps its own waiter
// lists), so the waker is a threadsafe function made on the device thread:
// the vCPU's NonBlockingCall is one uv_async wake-up of that thread's event
// loop, whose callback resumes the device loop directly.
//
// Wakers are process-wide, by id, because the vCPU loops that ring them live
// in other environments (worker threads). Each holder keeps a shared_ptr, and
// so does the threadsafe function's context, so a report still queued when
// the waker closes never touches freed memory. `closed` (under `mutex`) keeps
// every ring off a released function. Calls coalesce: at most one is queued,
// and one that arrives while the callback runs queues the next.

struct DeviceWaker;
void DeliverWake(Napi::Env env, Napi::Function callback, std::shared_ptr<DeviceWaker>* waker, std::nullptr_t*);
using WakerTsfn = Napi::TypedThreadSafeFunction<std::shared_ptr<DeviceWaker>, std::nullptr_t, DeliverWake>;

struct DeviceWaker {
  uint32_t id = 0;
  napi_env env = nullptr;
  std::mutex mutex;  // guards closed and every use of tsfn
  bool closed = false;
  std::atomic<bool> queued{false};
  WakerTsfn tsfn;
};

std::mutex device_wakers_mutex;
std::map<uint32_t, std::shared_ptr<DeviceWaker>> device_wakers;
uint32_t next_device_waker = 1;

std::shared_ptr<DeviceWaker> FindDeviceWaker(uint32_t id) {
  std::lock_guard<std::mutex> lock(device_wakers_mutex);
  auto found = device_wakers.find(id);
  return found == device_wakers.end() ? nullptr : found->second;
}

// Any thread. Coalesces: a call already queued will also see this hand-off.
void RingDeviceWaker(DeviceWaker& waker) {
  if (waker.queued.exchange(true, std::memory_order_acq_rel)) return;
  std::lock_guard<std::mutex> lock(waker.mutex);
  if (waker.closed || waker.tsfn.NonBlockingCall(static_cast<std::nullptr_t*>(nullptr)) != napi_ok) {
    waker.queued.store(false, std::memory_order_release);
  }
}

// On the device thread. Plain N-API calls, for the reason DeliverReport gives.
void DeliverWake(Napi::Env env, Napi::Function callback, std::shared_ptr<DeviceWaker>* waker, std::nullptr_t*) {
  if (env == nullptr || callback.IsEmpty()) return;
  // Cleared first: a ring from now on queues another call instead of being lost.
  (*waker)->queued.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock((*waker)->mutex);
    if ((*waker)->closed) return;
  }
  napi_value global, result;
  if (napi_get_undefined(env, &global) != napi_ok) return;
  napi_call_function(env, global, callback, 0, nullptr, &result);
}

void FreeWakerContext(Napi::Env, void*, std::shared_ptr<DeviceWaker>* waker) { delete waker; }

// Closes a waker: no ring reaches its function afterwards. Idempotent.
void CloseDeviceWaker(const std::shared_ptr<DeviceWaker>& waker) {
  {
    std::lock_guard<std::mutex> lock(device_wakers_mutex);
    device_wakers.erase(waker->id);
  }
  std::lock_guard<std::mutex> lock(waker->mutex);
  if (waker->closed) return;
  waker->closed = true;
  waker->tsfn.Release();
}

// The creating environment ends with the waker open: close it before the
// function's own teardown (hooks run in reverse order of addition).
void DeviceWakerCleanupHook(void* arg) {
  auto waker = FindDeviceWaker(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg)));
  if (waker) CloseDeviceWaker(waker);
}

// deviceWakerCreate(callback) -> id (> 0) or -errno. The callback runs on this
// thread when a native vCPU loop rings; it does not keep the event loop alive.
Napi::Value DeviceWakerCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "deviceWakerCreate(callback: () => void)").ThrowAsJavaScriptException();
    return env.Null();
  }
  auto waker = std::make_shared<DeviceWaker>();
  waker->env = env;
  {
    std::lock_guard<std::mutex> lock(device_wakers_mutex);
    waker->id = next_device_waker++;
  }
  auto* context = new std::shared_ptr<DeviceWaker>(waker);
  waker->tsfn = WakerTsfn::New(env, info[0].As<Napi::Function>(), "tsvmm device waker", 0, 1, context, FreeWakerContext);
  if (static_cast<napi_threadsafe_function>(waker->tsfn) == nullptr) {
    env.GetAndClearPendingException();
    delete context;
    return Napi::Number::New(env, -ENOMEM);
  }
  waker->tsfn.Unref(env);
  void* hook_arg = reinterpret_cast<void*>(static_cast<uintptr_t>(waker->id));
  if (napi_add_env_cleanup_hook(env, DeviceWakerCleanupHook, hook_arg) != napi_ok) {
    waker->closed = true;
    waker->tsfn.Release();
    return Napi::Number::New(env, -ENOMEM);
  }
  std::lock_guard<std::mutex> lock(device_wakers_mutex);
  device_wakers[waker->id] = waker;
  return Napi::Number::New(env, waker->id);
}

// deviceWakerClose(id) -> 0 or -EBADF. On the creating thread, after every
// vCPU loop that rings it has stopped; a ring after close does nothing.
Napi::Value DeviceWakerClose(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Number::New(env, -EBADF);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  auto waker = FindDeviceWaker(id);
  if (!waker || waker->env != static_cast<napi_env>(env)) return Napi::Number::New(env, -EBADF);
  napi_remove_env_cleanup_hook(env, DeviceWakerCleanupHook, reinterpret_cast<void*>(static_cast<uintptr_t>(id)));
  CloseDeviceWaker(waker);
  return Napi::Number::New(env, 0);
}

// ---------------------------------------------------------------------------
// The native vCPU exit loop (hand-off mode "native").
//
// The same protocol as src/vcpu-worker/run-loop.ts and
// src/shared/exit-channel.ts, moved here so that a forwarded or unclaimed
// exit never re-enters JavaScript: KVM_RUN, the claim check against the
// shared claim table, the all-ones answer of an unclaimed read, and for a
// claimed access the descriptor in the exit channel, the doorbell, a bounded
// spin and a futex wait for the device thread's answer. Everything else (stop
// and pause requests, HLT, shutdown, errors, the split irqchip's interrupt
// work) goes back to JavaScript, which decides. Which addresses are claimed
// and every device model stay in TypeScript; this code only reads the table.
//
// Waits on both sides use one mechanism per word, because V8's Atomics.wait
// and Atomics.notify keep their own waiter lists and neither sees a raw
// futex: the vCPU parks on `completed` with FUTEX_WAIT and the device thread
// wakes it with futexWake() (FUTEX_WAKE); the device thread keeps parking on
// the doorbell with Atomics.waitAsync, and this loop wakes it through a
// device waker (above), whose callback ends the park.
//
// All shared words are accessed with sequentially consistent atomics where
// JavaScript uses Atomics, and plain (relaxed) ones where it uses plain
// typed-array accesses, so the two sides keep the orderings exit-channel.ts
// argues for.

// Layout constants handed in by TypeScript (src/shared/native-exit-loop.ts).
struct VcpuLoopLayout {
  // kvm_run byte offsets
  uint32_t exit_reason, immediate_exit, io_direction, io_size, io_port, io_count, io_data_offset;
  uint32_t mmio_phys_addr, mmio_data, mmio_len, mmio_is_write, eoi_vector;
  // kvm_run.exit_reason values and the I/O direction that is a write
  uint32_t exit_io, exit_mmio, exit_ioapic_eoi, io_direction_out;
  // access kinds written into the channel's `kind`
  uint32_t kind_io_read, kind_io_write, kind_mmio_read, kind_mmio_write, kind_eoi;
  // Int32 slots of the exit channel and the doorbell
  uint32_t ch_requested, ch_kind, ch_address_low, ch_address_high, ch_size, ch_count, ch_data_offset;
  uint32_t ch_completed, ch_vcpu_parked, max_sequence;
  uint32_t db_rings, db_device_parked;
  // the claim table: Int32 header slots, byte offsets of the MMIO pairs and the port bitmap
  uint32_t cl_generation, cl_mmio_count, cl_mmio_offset, cl_max_mmio, cl_ports_offset;
  // Float64 stats slots
  uint32_t st_kvm_runs, st_io_exits, st_mmio_exits, st_forwarded, st_unclaimed, st_spin_hits, st_parks;
  uint32_t st_interrupted, st_other_exits;
  // Int32 control slots and the "no request" value
  uint32_t ctl_request, ctl_extint_pending, request_none;
  // The hand-off wait histogram (vcpu-stats.ts): Float64 slots of its two rows, and one wait in sample_every is timed
  uint32_t hw_spin_row, hw_park_row, hw_buckets, hw_sample_every;
  // What vcpuLoopRun returns besides -errno (native-exit-loop.ts NATIVE_LOOP_RETURN)
  uint32_t return_exit, return_interrupt;
};

struct VcpuLoop {
  uint32_t handle = 0;
  int vcpu_fd = -1;
  unsigned long run_request = 0;
  uint8_t* run = nullptr;
  size_t run_size = 0;
  int32_t* channel = nullptr;
  int32_t* doorbell = nullptr;
  int32_t* control = nullptr;
  double* stats = nullptr;
  uint8_t* claims = nullptr;
  std::shared_ptr<DeviceWaker> device_waker;
  bool injects_extint = false;
  uint32_t spin_limit = 0;
  uint32_t min_spin = 0;
  // The adaptive spin budget: doubled after a hit, halved after a park (as WaitCounters.spinBudget).
  uint32_t spin_budget = 0;
  VcpuLoopLayout layout;
  // This thread's copy of the MMIO claims and the generation it was taken at
  // (-1: never, so the first MMIO exit loads them).
  std::vector<double> mmio_bases, mmio_ends;
  int32_t seen_generation = -1;
  // Keep the shared buffers alive as long as the loop points into them.
  std::vector<napi_ref> references;
  napi_env env = nullptr;
};

void DeleteVcpuLoop(VcpuLoop* loop, bool release_references) {
  if (release_references) {
    for (napi_ref reference : loop->references) napi_delete_reference(loop->env, reference);
  }
  delete loop;
}

// One budget unit is this many loads: JavaScript's spin iteration
// (Atomics.load, compare, loop) measured ~9.5 ns here against ~0.7 ns for a
// load in C++, so --spin-limit keeps about the same meaning in time in both
// modes; fewer loads per unit made the native spin give up before a busy
// device thread answered, and park far more often than the JavaScript loop.
// No `pause`: the host is itself a VM, and a pause loop may be taken as a
// spinning lock holder and descheduled by the outer hypervisor.
constexpr uint32_t kLoadsPerSpin = 14;

// How long a reader sleeps on a claim-table publish in progress (as
// address-claims.ts PUBLISH_WAIT_MS): the writer is JavaScript, whose
// Atomics.notify cannot wake a futex, so sleep rather than wait on the word.
constexpr long kPublishWaitNs = 1000 * 1000;

inline int32_t LoadSeqCst(const int32_t* word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
inline void StoreSeqCst(int32_t* word, int32_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }
inline void StoreRelaxed(int32_t* word, int32_t value) { __atomic_store_n(word, value, __ATOMIC_RELAXED); }

template <typename T>
inline T LoadField(const uint8_t* run, uint32_t offset) {
  T value;
  memcpy(&value, run + offset, sizeof(value));  // kvm_run fields are naturally aligned; memcpy keeps it well-defined
  return value;
}

inline bool PortClaimed(const VcpuLoop& loop, uint32_t port) {
  uint8_t bits = __atomic_load_n(loop.claims + loop.layout.cl_ports_offset + (port >> 3), __ATOMIC_RELAXED);
  return (bits & (1u << (port & 7))) != 0;
}

// Re-reads the MMIO claims under the table's seqlock (odd generation: a
// publish is being written).
void ReloadMmioClaims(VcpuLoop& loop) {
  const VcpuLoopLayout& l = loop.layout;
  int32_t* header = reinterpret_cast<int32_t*>(loop.claims);
  const uint64_t* pairs = reinterpret_cast<const uint64_t*>(loop.claims + l.cl_mmio_offset);
  for (;;) {
    int32_t before = LoadSeqCst(header + l.cl_generation);
    if ((before & 1) != 0) {
      timespec pause = {0, kPublishWaitNs};
      nanosleep(&pause, nullptr);
      continue;
    }
    uint32_t count = static_cast<uint32_t>(LoadSeqCst(header + l.cl_mmio_count));
    if (count > l.cl_max_mmio) count = l.cl_max_mmio;  // a torn read; the generation check below retries it
    loop.mmio_bases.resize(count);
    loop.mmio_ends.resize(count);
    for (uint32_t i = 0; i < count; i++) {
      uint64_t base = __atomic_load_n(pairs + 2 * i, __ATOMIC_RELAXED);
      uint64_t end = __atomic_load_n(pairs + 2 * i + 1, __ATOMIC_RELAXED);
      memcpy(&loop.mmio_bases[i], &base, sizeof(double));
      memcpy(&loop.mmio_ends[i], &end, sizeof(double));
    }
    if (LoadSeqCst(header + l.cl_generation) != before) continue;
    loop.seen_generation = before;
    return;
  }
}

bool MmioClaimed(VcpuLoop& loop, uint64_t address) {
  int32_t generation = LoadSeqCst(reinterpret_cast<int32_t*>(loop.claims) + loop.layout.cl_generation);
  if (generation != loop.seen_generation) ReloadMmioClaims(loop);
  // The table holds addresses as doubles (exact below 2^53, as every guest-physical address is).
  double at = static_cast<double>(address);
  const auto& bases = loop.mmio_bases;
  auto after = std::upper_bound(bases.begin(), bases.end(), at);  // first range starting above the address
  if (after == bases.begin()) return false;
  size_t index = static_cast<size_t>(after - bases.begin()) - 1;
  return at < loop.mmio_ends[index];
}

// Waits for hand-off `sequence`: spins up to the adaptive budget unless the
// device thread is parked (its futex wake-up takes longer than any spin), then
// parks on `completed` with FUTEX_WAIT until futexWake() (ExitChannel.complete
// on the device side) says it is done. Counts the spin hit or the park.
void SpinOrPark(VcpuLoop& loop, int32_t sequence, bool* parked) {
  const VcpuLoopLayout& l = loop.layout;
  int32_t* completed = loop.channel + l.ch_completed;
  bool device_asleep = LoadSeqCst(loop.doorbell + l.db_device_parked) != 0;
  if (!device_asleep && loop.spin_limit > 0) {
    uint32_t budget = loop.spin_budget;
    for (uint32_t i = 0; i < budget; i++) {
      for (uint32_t j = 0; j < kLoadsPerSpin; j++) {
        if (__atomic_load_n(completed, __ATOMIC_ACQUIRE) == sequence) {
          loop.stats[l.st_spin_hits] += 1;
          loop.spin_budget = std::min(loop.spin_limit, budget * 2);
          return;
        }
      }
    }
    loop.spin_budget = std::max(std::min(loop.min_spin, loop.spin_limit), budget >> 1);
  }
  loop.stats[l.st_parks] += 1;
  *parked = true;
  StoreSeqCst(loop.channel + l.ch_vcpu_parked, 1);
  for (;;) {
    int32_t seen = LoadSeqCst(completed);
    if (seen == sequence) break;
    // EAGAIN (the word moved), EINTR (a kick) and spurious wake-ups all just look again.
    syscall(SYS_futex, completed, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }
  StoreSeqCst(loop.channel + l.ch_vcpu_parked, 0);
}

inline double MonotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

// Waits for hand-off `sequence` (SpinOrPark) and, for one wait in
// sample_every (by the forwarded count, as run-loop.ts does), counts how long
// it took into the stats histogram (vcpu-stats.ts recordHandOffWait): bucket
// 0 under 1 us, bucket k from 2^(k-1) us, the last one everything longer.
void WaitForCompletion(VcpuLoop& loop, int32_t sequence) {
  const VcpuLoopLayout& l = loop.layout;
  bool timed = static_cast<uint64_t>(loop.stats[l.st_forwarded]) % l.hw_sample_every == 0;
  double start = timed ? MonotonicNs() : 0;
  bool parked = false;
  SpinOrPark(loop, sequence, &parked);
  if (!timed) return;
  double micros = (MonotonicNs() - start) / 1000;
  uint32_t whole = micros >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(micros);
  uint32_t bucket = whole == 0 ? 0 : 32 - static_cast<uint32_t>(__builtin_clz(whole));
  bucket = std::min(bucket, l.hw_buckets - 1);
  loop.stats[(parked ? l.hw_park_row : l.hw_spin_row) + bucket] += 1;
}

// Writes the descriptor, publishes it with the sequence number after the last
// one (read from the word: JavaScript publishes INTA requests on the same
// channel), wakes a parked device thread and waits for the answer.
void HandOff(VcpuLoop& loop, uint32_t kind, uint64_t address, uint32_t size, uint32_t count, uint32_t data_offset) {
  const VcpuLoopLayout& l = loop.layout;
  int32_t* ch = loop.channel;
  StoreRelaxed(ch + l.ch_address_low, static_cast<int32_t>(static_cast<uint32_t>(address)));
  StoreRelaxed(ch + l.ch_address_high, static_cast<int32_t>(static_cast<uint32_t>(address >> 32)));
  StoreRelaxed(ch + l.ch_size, static_cast<int32_t>(size));
  StoreRelaxed(ch + l.ch_count, static_cast<int32_t>(count));
  StoreRelaxed(ch + l.ch_data_offset, static_cast<int32_t>(data_offset));
  StoreRelaxed(ch + l.ch_kind, static_cast<int32_t>(kind));
  int32_t last = __atomic_load_n(ch + l.ch_requested, __ATOMIC_RELAXED);  // only this thread writes it
  int32_t sequence = static_cast<int32_t>(static_cast<uint32_t>(last) % l.max_sequence + 1);
  StoreSeqCst(ch + l.ch_requested, sequence);
  // Doorbell.ring(): only a parked device thread needs waking (see its comment for why none is lost).
  if (LoadSeqCst(loop.doorbell + l.db_device_parked) != 0) {
    // The ring keeps beginPark's check right: a park that read the old value returns at once.
    __atomic_fetch_add(loop.doorbell + l.db_rings, 1, __ATOMIC_SEQ_CST);
    RingDeviceWaker(*loop.device_waker);
  }
  WaitForCompletion(loop, sequence);
}

// Runs the guest until an exit JavaScript must see. Returns return_exit (an
// exit not yet counted), return_interrupt (the userspace PIC's INT is up:
// JavaScript injects first), or -errno when KVM_RUN fails (EINTR/EAGAIN only with a
// stop or pause request in the control word; immediate_exit is then clear).
int RunVcpuLoop(VcpuLoop& loop) {
  const VcpuLoopLayout& l = loop.layout;
  uint8_t* run = loop.run;
  double* stats = loop.stats;
  bool first = true;
  for (;;) {
    // The first KVM_RUN of a call follows JavaScript's interrupt-injection
    // step; after that a raised INT goes back to it before the guest runs on.
    if (loop.injects_extint && !first && LoadSeqCst(loop.control + l.ctl_extint_pending) != 0) return static_cast<int>(l.return_interrupt);
    first = false;
    if (ioctl(loop.vcpu_fd, loop.run_request, 0UL) < 0) {
      int error = errno;
      if (error != EINTR && error != EAGAIN) return -error;
      // As run-loop.ts onRunError: clear immediate_exit (with a full fence)
      // before looking at the request, so a stop landing in between is either
      // seen now or still has immediate_exit set for the next KVM_RUN.
      __atomic_store_n(run + l.immediate_exit, 0, __ATOMIC_SEQ_CST);
      if (LoadSeqCst(loop.control + l.ctl_request) != static_cast<int32_t>(l.request_none)) return -error;
      stats[l.st_interrupted] += 1;
      continue;
    }
    uint32_t reason = LoadField<uint32_t>(run, l.exit_reason);
    if (reason == l.exit_io) {
      stats[l.st_kvm_runs] += 1;
      stats[l.st_io_exits] += 1;
      uint32_t port = LoadField<uint16_t>(run, l.io_port);
      bool write = run[l.io_direction] == l.io_direction_out;
      uint32_t size = run[l.io_size];
      uint32_t count = LoadField<uint32_t>(run, l.io_count);
      uint64_t data_offset = LoadField<uint64_t>(run, l.io_data_offset);
      if (PortClaimed(loop, port)) {
        stats[l.st_forwarded] += 1;
        HandOff(loop, write ? l.kind_io_write : l.kind_io_read, port, size, count, static_cast<uint32_t>(data_offset));
        continue;
      }
      // Reads nobody claims return all ones, as a PC bus with no device answers.
      // Clamped to the mapping, as the typed-array fill in JavaScript is.
      if (!write && data_offset < loop.run_size) {
        uint64_t length = std::min<uint64_t>(static_cast<uint64_t>(size) * count, loop.run_size - data_offset);
        memset(run + data_offset, 0xff, length);
      }
      stats[l.st_unclaimed] += 1;
      continue;
    }
    if (reason == l.exit_mmio) {
      stats[l.st_kvm_runs] += 1;
      stats[l.st_mmio_exits] += 1;
      uint64_t address = LoadField<uint64_t>(run, l.mmio_phys_addr);
      bool write = run[l.mmio_is_write] != 0;
      uint32_t length = std::min<uint32_t>(LoadField<uint32_t>(run, l.mmio_len), 8);  // kvm_run.mmio.data holds 8
      if (MmioClaimed(loop, address)) {
        stats[l.st_forwarded] += 1;
        HandOff(loop, write ? l.kind_mmio_write : l.kind_mmio_read, address, length, 1, l.mmio_data);
        continue;
      }
      if (!write) memset(run + l.mmio_data, 0xff, length);
      stats[l.st_unclaimed] += 1;
      continue;
    }
    if (reason == l.exit_ioapic_eoi) {
      // Only with the split irqchip: the userspace IOAPIC must see the EOI.
      stats[l.st_kvm_runs] += 1;
      stats[l.st_other_exits] += 1;
      HandOff(loop, l.kind_eoi, run[l.eoi_vector], 0, 0, 0);
      continue;
    }
    return static_cast<int>(l.return_exit);
  }
}

// Reads the layout and buffers of vcpuLoopCreate's config; the first problem
// becomes a TypeError or RangeError naming the field.
class LoopConfigReader {
 public:
  explicit LoopConfigReader(Napi::Env env) : env_(env) {}

  bool failed() const { return !problem_.empty(); }
  const std::string& problem() const { return problem_; }

  Napi::Object Object(Napi::Object from, const char* name) {
    Napi::Value value = from.Get(name);
    if (!value.IsObject()) {
      Fail(std::string(name) + " must be an object");
      return Napi::Object::New(env_);
    }
    return value.As<Napi::Object>();
  }

  uint32_t Uint32(Napi::Object from, const char* name) {
    Napi::Value value = from.Get(name);
    if (!value.IsNumber()) {
      Fail(std::string(name) + " must be a number");
      return 0;
    }
    double number = value.As<Napi::Number>().DoubleValue();
    if (!(number >= 0 && number <= 0xffffffff) || number != static_cast<double>(static_cast<uint32_t>(number))) {
      Fail(std::string(name) + " must be an integer from 0 to 2^32-1");
      return 0;
    }
    return static_cast<uint32_t>(number);
  }

  // The data of a typed array of `type` (over a SharedArrayBuffer or not),
  // holding a reference so the memory outlives the loop.
  template <typename T>
  T* Array(Napi::Object from, const char* name, napi_typedarray_type type, size_t* length, std::vector<napi_ref>* refs) {
    Napi::Value value = from.Get(name);
    napi_typedarray_type actual;
    void* data = nullptr;
    napi_value buffer;
    size_t offset = 0;
    bool is_typed = false;
    napi_is_typedarray(env_, value, &is_typed);
    if (!is_typed || napi_get_typedarray_info(env_, value, &actual, length, &data, &buffer, &offset) != napi_ok ||
        actual != type || data == nullptr) {
      Fail(std::string(name) + " must be a typed array of the expected element type");
      return nullptr;
    }
    napi_ref reference;
    if (napi_create_reference(env_, value, 1, &reference) == napi_ok) refs->push_back(reference);
    return static_cast<T*>(data);
  }

  void Fail(const std::string& problem) {
    if (problem_.empty()) problem_ = "vcpuLoopCreate: " + problem;
  }

 private:
  Napi::Env env_;
  std::string problem_;
};

// vcpuLoopCreate(config) -> handle (> 0). Throws TypeError or RangeError for
// a malformed config (src/shared/native-exit-loop.ts builds it).
Napi::Value VcpuLoopCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "vcpuLoopCreate(config: object)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Object config = info[0].As<Napi::Object>();
  LoopConfigReader read(env);
  auto* loop = new VcpuLoop();
  loop->env = env;
  loop->vcpu_fd = static_cast<int>(read.Uint32(config, "vcpuFd"));
  loop->run_request = read.Uint32(config, "runRequest");
  Napi::Value run_address = config.Get("runAddress");
  if (!run_address.IsBigInt()) read.Fail("runAddress must be a bigint");
  else {
    bool lossless = false;
    loop->run = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(run_address.As<Napi::BigInt>().Uint64Value(&lossless)));
  }
  loop->run_size = read.Uint32(config, "runSize");
  size_t channel_words = 0, doorbell_words = 0, control_words = 0, stats_slots = 0, claims_bytes = 0;
  loop->channel = read.Array<int32_t>(config, "channel", napi_int32_array, &channel_words, &loop->references);
  loop->doorbell = read.Array<int32_t>(config, "doorbell", napi_int32_array, &doorbell_words, &loop->references);
  loop->control = read.Array<int32_t>(config, "control", napi_int32_array, &control_words, &loop->references);
  loop->stats = read.Array<double>(config, "stats", napi_float64_array, &stats_slots, &loop->references);
  loop->claims = read.Array<uint8_t>(config, "claims", napi_uint8_array, &claims_bytes, &loop->references);
  loop->device_waker = FindDeviceWaker(read.Uint32(config, "deviceWaker"));
  if (!loop->device_waker) read.Fail("deviceWaker is not an open device waker");
  loop->spin_limit = read.Uint32(config, "spinLimit");
  loop->min_spin = read.Uint32(config, "minSpin");
  loop->spin_budget = loop->spin_limit;
  loop->injects_extint = config.Get("injectsExtint").ToBoolean().Value();

  Napi::Object layout = read.Object(config, "layout");
  Napi::Object kvm_run = read.Object(layout, "kvmRun");
  Napi::Object exit = read.Object(layout, "exit");
  Napi::Object kind = read.Object(layout, "accessKind");
  Napi::Object channel = read.Object(layout, "channel");
  Napi::Object doorbell = read.Object(layout, "doorbell");
  Napi::Object claims = read.Object(layout, "claims");
  Napi::Object stats = read.Object(layout, "stats");
  Napi::Object control = read.Object(layout, "control");
  VcpuLoopLayout& l = loop->layout;
  l.exit_reason = read.Uint32(kvm_run, "exit_reason");
  l.immediate_exit = read.Uint32(kvm_run, "immediate_exit");
  l.io_direction = read.Uint32(kvm_run, "io_direction");
  l.io_size = read.Uint32(kvm_run, "io_size");
  l.io_port = read.Uint32(kvm_run, "io_port");
  l.io_count = read.Uint32(kvm_run, "io_count");
  l.io_data_offset = read.Uint32(kvm_run, "io_data_offset");
  l.mmio_phys_addr = read.Uint32(kvm_run, "mmio_phys_addr");
  l.mmio_data = read.Uint32(kvm_run, "mmio_data");
  l.mmio_len = read.Uint32(kvm_run, "mmio_len");
  l.mmio_is_write = read.Uint32(kvm_run, "mmio_is_write");
  l.eoi_vector = read.Uint32(kvm_run, "eoi_vector");
  l.exit_io = read.Uint32(exit, "IO");
  l.exit_mmio = read.Uint32(exit, "MMIO");
  l.exit_ioapic_eoi = read.Uint32(exit, "IOAPIC_EOI");
  l.io_direction_out = read.Uint32(layout, "ioDirectionOut");
  l.kind_io_read = read.Uint32(kind, "ioRead");
  l.kind_io_write = read.Uint32(kind, "ioWrite");
  l.kind_mmio_read = read.Uint32(kind, "mmioRead");
  l.kind_mmio_write = read.Uint32(kind, "mmioWrite");
  l.kind_eoi = read.Uint32(kind, "eoi");
  l.ch_requested = read.Uint32(channel, "requested");
  l.ch_kind = read.Uint32(channel, "kind");
  l.ch_address_low = read.Uint32(channel, "addressLow");
  l.ch_address_high = read.Uint32(channel, "addressHigh");
  l.ch_size = read.Uint32(channel, "size");
  l.ch_count = read.Uint32(channel, "count");
  l.ch_data_offset = read.Uint32(channel, "dataOffset");
  l.ch_completed = read.Uint32(channel, "completed");
  l.ch_vcpu_parked = read.Uint32(channel, "vcpuParked");
  l.max_sequence = read.Uint32(layout, "maxSequence");
  l.db_rings = read.Uint32(doorbell, "rings");
  l.db_device_parked = read.Uint32(doorbell, "deviceParked");
  l.cl_generation = read.Uint32(claims, "generation");
  l.cl_mmio_count = read.Uint32(claims, "mmioCount");
  l.cl_mmio_offset = read.Uint32(claims, "mmioOffset");
  l.cl_max_mmio = read.Uint32(claims, "maxMmioClaims");
  l.cl_ports_offset = read.Uint32(claims, "portsOffset");
  l.st_kvm_runs = read.Uint32(stats, "kvmRuns");
  l.st_io_exits = read.Uint32(stats, "ioExits");
  l.st_mmio_exits = read.Uint32(stats, "mmioExits");
  l.st_forwarded = read.Uint32(stats, "forwarded");
  l.st_unclaimed = read.Uint32(stats, "unclaimed");
  l.st_spin_hits = read.Uint32(stats, "spinHits");
  l.st_parks = read.Uint32(stats, "parks");
  l.st_interrupted = read.Uint32(stats, "interrupted");
  l.st_other_exits = read.Uint32(stats, "otherExits");
  l.ctl_request = read.Uint32(control, "request");
  l.ctl_extint_pending = read.Uint32(control, "extintPending");
  l.request_none = read.Uint32(layout, "requestNone");
  Napi::Object hand_off_waits = read.Object(layout, "handOffWaits");
  l.hw_spin_row = read.Uint32(hand_off_waits, "spinRow");
  l.hw_park_row = read.Uint32(hand_off_waits, "parkRow");
  l.hw_buckets = read.Uint32(hand_off_waits, "buckets");
  l.hw_sample_every = read.Uint32(hand_off_waits, "sampleEvery");
  Napi::Object returns = read.Object(layout, "returns");
  l.return_exit = read.Uint32(returns, "exit");
  l.return_interrupt = read.Uint32(returns, "interrupt");

  // Every slot and offset must lie inside its buffer: the loop indexes without checks.
  if (!read.failed()) {
    auto inside = [&](std::initializer_list<uint32_t> slots, size_t length, const char* what) {
      for (uint32_t slot : slots) {
        if (slot >= length) read.Fail(std::string("a ") + what + " slot is past the end of its buffer");
      }
    };
    inside({l.ch_requested, l.ch_kind, l.ch_address_low, l.ch_address_high, l.ch_size, l.ch_count, l.ch_data_offset,
            l.ch_completed, l.ch_vcpu_parked}, channel_words, "channel");
    inside({l.db_rings, l.db_device_parked}, doorbell_words, "doorbell");
    inside({l.ctl_request, l.ctl_extint_pending}, control_words, "control");
    inside({l.st_kvm_runs, l.st_io_exits, l.st_mmio_exits, l.st_forwarded, l.st_unclaimed, l.st_spin_hits, l.st_parks,
            l.st_interrupted, l.st_other_exits}, stats_slots, "stats");
    inside({l.cl_generation, l.cl_mmio_count}, l.cl_mmio_offset / 4, "claim table header");
    if (l.cl_mmio_offset % 8 != 0 || l.cl_mmio_offset + static_cast<size_t>(l.cl_max_mmio) * 16 > l.cl_ports_offset ||
        l.cl_ports_offset + 0x10000 / 8 > claims_bytes) {
      read.Fail("the claim table layout does not fit its buffer");
    }
    inside({l.exit_reason + 3, l.immediate_exit, l.io_direction, l.io_size, l.io_port + 1, l.io_count + 3,
            l.io_data_offset + 7, l.mmio_phys_addr + 7, l.mmio_data + 7, l.mmio_len + 3, l.mmio_is_write,
            l.eoi_vector}, loop->run_size, "kvm_run");
    if (l.hw_buckets == 0 || l.hw_sample_every == 0 || l.hw_spin_row + static_cast<size_t>(l.hw_buckets) > stats_slots ||
        l.hw_park_row + static_cast<size_t>(l.hw_buckets) > stats_slots) {
      read.Fail("the hand-off wait histogram does not fit the stats buffer");
    }
    if (l.max_sequence == 0 || l.max_sequence > 0x7fffffff) read.Fail("maxSequence must be from 1 to 2^31-1");
    if (loop->run == nullptr) read.Fail("runAddress must not be 0");
    // Neither may look like -errno or like each other.
    if (l.return_exit == 0 || l.return_interrupt == 0 || l.return_exit == l.return_interrupt ||
        l.return_exit > 0x7fffffff || l.return_interrupt > 0x7fffffff) {
      read.Fail("returns must be two different positive numbers");
    }
  }
  if (read.failed()) {
    std::string problem = read.problem();
    DeleteVcpuLoop(loop, true);
    Napi::RangeError::New(env, problem).ThrowAsJavaScriptException();
    return env.Null();
  }
  auto* state = StateOf(env);
  loop->handle = state->next_vcpu_loop++;
  state->vcpu_loops[loop->handle] = loop;
  return Napi::Number::New(env, loop->handle);
}

VcpuLoop* VcpuLoopOf(const Napi::CallbackInfo& info) {
  return HandleOf(info, StateOf(info.Env())->vcpu_loops);
}

// vcpuLoopRun(handle) -> 1 (an exit for JavaScript), 2 (INT raised), -errno.
Napi::Value VcpuLoopRun(const Napi::CallbackInfo& info) {
  VcpuLoop* loop = VcpuLoopOf(info);
  if (loop == nullptr) return Napi::Number::New(info.Env(), -EBADF);
  return Napi::Number::New(info.Env(), RunVcpuLoop(*loop));
}

// vcpuLoopWait(handle, sequence) -> 0 or -EBADF: waits, as the loop does, for a
// hand-off JavaScript published itself (the split irqchip's INTA request).
Napi::Value VcpuLoopWait(const Napi::CallbackInfo& info) {
  VcpuLoop* loop = VcpuLoopOf(info);
  if (loop == nullptr || info.Length() < 2 || !info[1].IsNumber()) return Napi::Number::New(info.Env(), -EBADF);
  WaitForCompletion(*loop, info[1].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), 0);
}

// futexWake(int32Array, index) -> waiters woken or -errno: the device side's
// wake-up of a vCPU parked in the native loop's FUTEX_WAIT.
Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  bool is_typed = false;
  if (info.Length() >= 2) napi_is_typedarray(env, info[0], &is_typed);
  if (!is_typed || !info[1].IsNumber() ||
      napi_get_typedarray_info(env, info[0], &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_int32_array) {
    Napi::TypeError::New(env, "futexWake(words: Int32Array, index: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  uint32_t index = info[1].As<Napi::Number>().Uint32Value();
  if (index >= length) {
    Napi::RangeError::New(env, "futexWake: index past the end of the array").ThrowAsJavaScriptException();
    return env.Null();
  }
  long woken = syscall(SYS_futex, static_cast<int32_t*>(data) + index, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  return Result(env, woken);
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
  exports.Set("deviceWakerCreate", Napi::Function::New(env, DeviceWakerCreate, "deviceWakerCreate"));
  exports.Set("deviceWakerClose", Napi::Function::New(env, DeviceWakerClose, "deviceWakerClose"));
  exports.Set("vcpuLoopCreate", Napi::Function::New(env, VcpuLoopCreate, "vcpuLoopCreate"));
  exports.Set("vcpuLoopRun", Napi::Function::New(env, VcpuLoopRun, "vcpuLoopRun"));
  exports.Set("vcpuLoopWait", Napi::Function::New(env, VcpuLoopWait, "vcpuLoopWait"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("currentThread", Napi::Function::New(env, CurrentThread, "currentThread"));
  exports.Set("kick", Napi::Function::New(env, Kick, "kick"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
  return exports;
}

}  // namespace

NODE_API_MODULE(tsvmm_native, Init)
