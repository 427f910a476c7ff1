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

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <mutex>
#include <string>
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

// Mappings created through one environment; unmapped when it is torn down.
struct EnvironmentState {
  struct Mapping {
    void* address;
    size_t length;
  };
  std::vector<Mapping> mappings;
};

void CleanupEnvironment(Napi::Env, EnvironmentState* state) {
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
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("currentThread", Napi::Function::New(env, CurrentThread, "currentThread"));
  exports.Set("kick", Napi::Function::New(env, Kick, "kick"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
  return exports;
}

}  // namespace

NODE_API_MODULE(tsvmm_native, Init)
