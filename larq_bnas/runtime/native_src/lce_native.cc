// Native kernels for Larq Compute Engine's custom ops, as a TensorFlow Lite delegate.
//
// LCE's Python wheel has hand-written binary kernels for ARM only; on x86 its bconv is
// portable scalar C++. This library claims the LCE nodes of a flatbuffer (LceQuantize,
// LceDequantize, LceBconv2d, LceBMaxPool2d) in TensorFlow Lite's own interpreter and runs
// them with vector popcounts on a small thread pool. The float ops stay with TensorFlow
// Lite (and its XNNPACK delegate).
//
// One build serves any x86-64 CPU: the vector paths are compiled with target attributes
// and chosen at run time from CPUID (AVX-512 VPOPCNTDQ, else AVX2 with a nibble-lookup
// popcount, else scalar); the delegate option "isa" forces one. Other architectures get
// the scalar path.
//
// Every value read from the model (tensor indices, types and shapes, packed-word counts,
// per-channel vector lengths, strides, dilations, padding, custom-option bytes) is
// checked in Prepare before a kernel uses it; a bad model fails Prepare with a message
// naming the node and the value. Output shapes are computed from the input shapes in
// Prepare, so any batch size and input resize work.
//
// Semantics follow LCE: bit 1 is -1; a bconv's dot product is K - 2 * popcount(x ^ w)
// with one-padding counted as +1 inputs, zero padding corrected per border pixel; float
// output = clamp(dot) * multiplier + bias; bitpacked output bit = popcount > threshold.
//
// Exported (C): tflite_plugin_create_delegate, tflite_plugin_destroy_delegate,
// lce_native_claimed, lce_native_fused, lce_native_error, lce_native_profile,
// lce_native_features, lce_native_cpu_isas, lce_native_isa, lce_native_tensor_info.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LCE_NATIVE_X86 1
#define LCE_NATIVE_PAUSE() _mm_pause()
#define LCE_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,fma")))
#define LCE_TARGET_AVX2 __attribute__((target("avx2,fma,popcnt")))
#else
#define LCE_NATIVE_X86 0
#define LCE_NATIVE_PAUSE() std::this_thread::yield()
#endif

#include "tflite_abi.h"

#define LCE_NATIVE_EXPORT __attribute__((visibility("default")))

namespace {

// ---------------------------------------------------------------------------------------
// Instruction sets.

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* IsaName(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "scalar";
}

bool CpuHas(Isa isa) {
  if (isa == Isa::kScalar) return true;
#if LCE_NATIVE_X86
  __builtin_cpu_init();
  if (isa == Isa::kAvx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

Isa BestIsa() {
  if (CpuHas(Isa::kAvx512)) return Isa::kAvx512;
  if (CpuHas(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

// ---------------------------------------------------------------------------------------
// Custom options: LCE writes a flexbuffer map of numbers. Every read is bounds-checked.

struct Flex {
  const uint8_t* buf;
  size_t len;
  bool Has(size_t off, size_t n) const { return off <= len && n <= len - off; }
  bool U(size_t off, int width, uint64_t* v) const {
    if (!Has(off, static_cast<size_t>(width))) return false;
    const uint8_t* p = buf + off;
    switch (width) {
      case 1: *v = p[0]; return true;
      case 2: {
        uint16_t x;
        std::memcpy(&x, p, 2);
        *v = x;
        return true;
      }
      case 4: {
        uint32_t x;
        std::memcpy(&x, p, 4);
        *v = x;
        return true;
      }
      case 8: {
        uint64_t x;
        std::memcpy(&x, p, 8);
        *v = x;
        return true;
      }
      default: return false;
    }
  }
  bool I(size_t off, int width, int64_t* v) const {
    uint64_t u;
    if (!U(off, width, &u)) return false;
    switch (width) {
      case 1: *v = static_cast<int8_t>(u); return true;
      case 2: *v = static_cast<int16_t>(u); return true;
      case 4: *v = static_cast<int32_t>(u); return true;
      default: *v = static_cast<int64_t>(u); return true;
    }
  }
  bool F(size_t off, int width, double* v) const {
    if (!Has(off, static_cast<size_t>(width))) return false;
    if (width == 4) {
      float x;
      std::memcpy(&x, buf + off, 4);
      *v = x;
      return true;
    }
    if (width == 8) {
      std::memcpy(v, buf + off, 8);
      return true;
    }
    return false;
  }
  // off - (offset stored at off), if it stays inside the buffer.
  bool Back(size_t off, int width, size_t* target) const {
    uint64_t d;
    if (!U(off, width, &d) || d > off) return false;
    *target = off - static_cast<size_t>(d);
    return true;
  }
};

bool ValidWidth(uint64_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }

// Look up `key` in the flexbuffer map `buf`: 1 found (a number), 0 absent, -1 malformed.
int FlexNumber(const uint8_t* buf, size_t len, const char* key, double* out) {
  if (buf == nullptr || len == 0) return 0;
  const Flex f{buf, len};
  if (len < 3) return -1;
  const int root_width = buf[len - 1];
  const uint8_t root_type = buf[len - 2];
  if (!ValidWidth(root_width) || len < static_cast<size_t>(2 + root_width)) return -1;
  if ((root_type >> 2) != 9) return -1;  // FBT_MAP
  const size_t root = len - 2 - root_width;
  size_t data;
  if (!f.Back(root, root_width, &data)) return -1;
  const int w = 1 << (root_type & 3);
  if (data < static_cast<size_t>(3 * w)) return -1;
  uint64_t size, key_width;
  size_t keys;
  if (!f.U(data - w, w, &size) || size > len) return -1;
  if (!f.U(data - 2 * w, w, &key_width) || !ValidWidth(key_width)) return -1;
  if (!f.Back(data - 3 * w, w, &keys)) return -1;
  if (!f.Has(data, size * w) || !f.Has(data + size * w, size)) return -1;
  if (!f.Has(keys, size * key_width)) return -1;
  const size_t types = data + size * w;
  for (uint64_t i = 0; i < size; ++i) {
    size_t name;
    if (!f.Back(keys + i * key_width, static_cast<int>(key_width), &name)) return -1;
    const size_t max = len - name;
    const size_t n = strnlen(reinterpret_cast<const char*>(buf + name), max);
    if (n == max) return -1;  // no terminating NUL inside the buffer
    if (std::strcmp(reinterpret_cast<const char*>(buf + name), key) != 0) continue;
    const size_t value = data + i * w;
    const int type = buf[types + i] >> 2, child_width = 1 << (buf[types + i] & 3);
    int64_t iv;
    uint64_t uv;
    size_t target;
    switch (type) {
      case 1:  // INT
        if (!f.I(value, w, &iv)) return -1;
        *out = static_cast<double>(iv);
        return 1;
      case 2:   // UINT
      case 26:  // BOOL
        if (!f.U(value, w, &uv)) return -1;
        *out = static_cast<double>(uv);
        return 1;
      case 3:  // FLOAT
        return f.F(value, w, out) ? 1 : -1;
      case 6:  // INDIRECT_INT
        if (!f.Back(value, w, &target) || !f.I(target, child_width, &iv)) return -1;
        *out = static_cast<double>(iv);
        return 1;
      case 7:  // INDIRECT_UINT
        if (!f.Back(value, w, &target) || !f.U(target, child_width, &uv)) return -1;
        *out = static_cast<double>(uv);
        return 1;
      case 8:  // INDIRECT_FLOAT
        return f.Back(value, w, &target) && f.F(target, child_width, out) ? 1 : -1;
      default: return -1;
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// A fork-join pool: Run(n, fn) calls fn(0..n-1) on the caller and the workers. Idle
// workers and the waiting caller spin briefly, then block.

class Pool {
 public:
  explicit Pool(int threads) {
    if (const char* env = std::getenv("LARQ_BNAS_NATIVE_SPIN")) spin_ = std::atoi(env);
    if (const char* env = std::getenv("LARQ_BNAS_NATIVE_MIN_WORK")) min_work_ = std::atof(env);
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // `work` estimates the cost (in simple operations): small jobs run on the caller alone,
  // since waking a worker costs more than it saves.
  void Run(int tasks, const std::function<void(int)>& fn, double work = 1e9) {
    if (tasks <= 0) return;
    if (workers_.empty() || tasks == 1 || work < min_work_) {
      for (int i = 0; i < tasks; ++i) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      tasks_ = tasks;
      next_.store(0);
      active_.store(0);
      open_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    Drain();
    // Every task is taken. Close the job and wait only for the workers that joined it:
    // a worker not scheduled yet (a busy machine) is not waited for; it finds the job
    // closed when it wakes.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = false;
    }
    for (int spin = 0; spin < spin_ && active_.load(std::memory_order_acquire) != 0; ++spin)
      LCE_NATIVE_PAUSE();
    if (active_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
    }
    job_ = nullptr;
  }

 private:
  void Drain() {
    for (int i = next_.fetch_add(1); i < tasks_; i = next_.fetch_add(1)) (*job_)(i);
  }
  void Work() {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little (the next op usually follows within microseconds), then sleep.
      for (int spin = 0; spin < spin_ && generation_.load(std::memory_order_acquire) == seen;
           ++spin)
        LCE_NATIVE_PAUSE();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        if (stop_) return;
        if (!open_) continue;  // woke after the caller finished the job alone
        active_.fetch_add(1);
      }
      Drain();
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);  // no lost wake-up of the caller
        done_.notify_one();
      }
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> active_{0};  // workers that joined the current job
  bool open_ = false;           // the current job takes new workers (under mutex_)
  const std::function<void(int)>* job_ = nullptr;
  int tasks_ = 0;
  int spin_ = 2000;
  double min_work_ = 2e4;
  bool stop_ = false;
};

// ---------------------------------------------------------------------------------------
// Kernels.

enum class Kind { kQuantize, kDequantize, kBconv, kBMaxPool };
const char* KindName(Kind kind) {
  static const char* names[4] = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"};
  return names[static_cast<int>(kind)];
}

struct Delegate;

constexpr int kLanes = 16;        // output channels per vector block
constexpr int kMaxDim = 1 << 24;  // any spatial / channel / batch size above is refused
constexpr int kMaxKernel = 256;   // filter height / width
constexpr int kMaxStride = 4096;  // stride and dilation
constexpr int64_t kMaxElements = int64_t{1} << 31;
constexpr int kBadOption = std::numeric_limits<int>::min();

inline int Words(int64_t channels) { return static_cast<int>((channels + 31) / 32); }

// A float element-wise op fused into a kernel: before a LceQuantize (the BatchNorm in
// front of a sign) or after a float-output LceBconv2d (ReLU, then a BatchNorm).
struct Elementwise {
  enum Op { kRelu, kMul, kAdd } op;
  std::vector<float> values;  // per channel, padded to whole 32-channel words (kRelu: none)
  int channels = 0;           // the channel count `values` was made for
};

struct Kernel {
  Kind kind;
  Delegate* owner = nullptr;
  int node = -1;      // the LCE node's index, for messages
  std::string error;  // a problem found in Init, reported by Prepare
  int input = -1, output = -1;
  // LceBconv2d
  int filter = -1, multiplier = -1, bias = -1, threshold = -1;
  int channels_in = 0, dilation_h = 1, dilation_w = 1, stride_h = 1, stride_w = 1;
  int activation = 0, pad_values = 0, padding = 0;  // padding: 0 SAME, 1 VALID
  int groups = 1, cin_group = 0, words = 0, cout = 0, cout_group = 0, kh = 1, kw = 1;
  int blocks = 0;  // vector blocks per group
  int clamp_min = 0, clamp_max = 0;
  const void* packed_from = nullptr;  // the filter data `packed` was made from
  std::vector<uint32_t> packed;       // [group][block][kpos][word][lane]
  std::vector<int32_t> wsum;          // [group][block][kpos][lane]: sum of +-1 weights
  std::vector<float> mult, add;       // per output channel, padded to whole blocks
  std::vector<int32_t> thresh;        // likewise
  std::vector<uint32_t> zeros;        // one-padding input: +1 everywhere = bits 0
  // LceBMaxPool2d
  int filter_h = 1, filter_w = 1;
  // fused float ops: `pre` before a LceQuantize, `post` after a float LceBconv2d
  std::vector<Elementwise> pre, post;
  // sizes checked in Prepare and again (cheaply) before each Invoke
  size_t in_bytes = 0, out_bytes = 0;
};

struct Delegate {
  TfLiteDelegate base;
  int threads = 1;
  Isa isa = Isa::kScalar;
  Pool* pool = nullptr;
  TfLiteContext* context = nullptr;  // of the last Prepare (for the ABI check)
  int claimed = 0;                   // LCE nodes run here
  int fused = 0;                     // float nodes folded into them
  bool fuse = true;                  // option "fuse": fold neighbouring float element-wise ops
  std::vector<int> protect;          // option "protect": tensors read outside the graph
  std::string error;
  bool profile = std::getenv("LARQ_BNAS_NATIVE_PROFILE") != nullptr;
  double seconds[4] = {0, 0, 0, 0};  // per Kind, with `profile`
  int64_t calls[4] = {0, 0, 0, 0};
  std::string report, info;
  ~Delegate() { delete pool; }
};

// ---- checked access to the model's tensors

bool ValidTensor(const TfLiteContext* c, int t) {
  if (t < 0 || static_cast<size_t>(t) >= c->tensors_size) return false;
  const TfLiteIntArray* d = c->tensors[t].dims;
  if (d == nullptr || d->size < 0 || d->size > 8) return false;
  for (int i = 0; i < d->size; ++i)
    if (d->data[i] < 0 || d->data[i] > kMaxDim) return false;
  return true;
}
inline const TfLiteIntArray* Dims(const TfLiteContext* c, int t) { return c->tensors[t].dims; }
inline int Dim(const TfLiteContext* c, int t, int i) {
  const TfLiteIntArray* d = Dims(c, t);
  return d->data[i < 0 ? d->size + i : i];
}
// Elements of a valid tensor, saturating at kMaxElements.
int64_t Elements(const TfLiteContext* c, int t) {
  const TfLiteIntArray* d = Dims(c, t);
  int64_t n = 1;
  for (int i = 0; i < d->size; ++i) {
    n *= d->data[i];
    if (n > kMaxElements) return kMaxElements;
  }
  return n;
}

int Option(const TfLiteNode* node, const char* key, int fallback) {
  double value;
  const int found =
      FlexNumber(static_cast<const uint8_t*>(node->custom_initial_data),
                 static_cast<size_t>(std::max(0, node->custom_initial_data_size)), key, &value);
  if (found == 0) return fallback;
  if (found < 0 || !(value >= -1e6 && value <= 1e9)) return kBadOption;
  return static_cast<int>(value);
}

// SAME padding's leading pad (TensorFlow's rule).
int LeadingPad(int in, int out, int k, int stride, int dilation, int padding) {
  if (padding != 0) return 0;
  const int64_t total =
      (static_cast<int64_t>(out) - 1) * stride + (static_cast<int64_t>(k) - 1) * dilation + 1 - in;
  return total > 0 ? static_cast<int>(total / 2) : 0;
}

// Output size along one axis (TensorFlow's rule), or -1 if the window does not fit.
int64_t OutSize(int in, int k, int stride, int dilation, int padding) {
  if (padding == 0) return (static_cast<int64_t>(in) + stride - 1) / stride;
  const int64_t effective = (static_cast<int64_t>(k) - 1) * dilation + 1;
  if (in < effective) return -1;
  return (in - effective) / stride + 1;
}

// ---- validation helpers: fill k->error and return false

struct Checker {
  TfLiteContext* c;
  Kernel* k;
  bool Fail(const char* format, ...) __attribute__((format(printf, 2, 3))) {
    char text[400];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    k->error = std::string("lce_native: ") + KindName(k->kind) + " (node " +
               std::to_string(k->node) + "): " + text;
    return false;
  }
  bool Tensor(int t, const char* role, TfLiteType type, int rank) {
    if (!ValidTensor(c, t))
      return Fail("%s tensor index %d is invalid or has a bad shape", role, t);
    const TfLiteTensor& x = c->tensors[t];
    if (x.type != type)
      return Fail("%s tensor %d has type %d; expected %d", role, t, static_cast<int>(x.type),
                  static_cast<int>(type));
    if (rank > 0 && Dims(c, t)->size != rank)
      return Fail("%s tensor %d has rank %d; expected %d", role, t, Dims(c, t)->size, rank);
    if (rank < 0 && Dims(c, t)->size < 1) return Fail("%s tensor %d is a scalar", role, t);
    return true;
  }
  bool Constant(int t, const char* role, TfLiteType type, int64_t elements) {
    if (!Tensor(t, role, type, 0)) return false;
    const TfLiteTensor& x = c->tensors[t];
    if (x.data == nullptr) return Fail("%s tensor %d is not a constant", role, t);
    const int64_t n = Elements(c, t);
    if (n != elements)
      return Fail("%s tensor %d has %lld values; expected %lld", role, t, static_cast<long long>(n),
                  static_cast<long long>(elements));
    if (x.bytes < static_cast<size_t>(n) * 4)
      return Fail("%s tensor %d holds %zu bytes; expected %lld", role, t, x.bytes,
                  static_cast<long long>(n * 4));
    return true;
  }
  bool Range(int value, const char* name, int lo, int hi) {
    if (value < lo || value > hi)
      return value == kBadOption ? Fail("option %s is malformed", name)
                                 : Fail("option %s is %d; valid: %d..%d", name, value, lo, hi);
    return true;
  }
  // Resize `t` to `dims` (TFLite takes ownership of the array) unless it has them already.
  bool Resize(int t, const std::vector<int>& dims) {
    const TfLiteIntArray* now = Dims(c, t);
    bool same = now->size == static_cast<int>(dims.size());
    for (size_t i = 0; same && i < dims.size(); ++i) same = now->data[i] == dims[i];
    if (same) return true;
    auto* a = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (dims.size() + 1)));
    if (a == nullptr) return Fail("out of memory");
    a->size = static_cast<int>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) a->data[i] = dims[i];
    if (c->ResizeTensor(c, &c->tensors[t], a) != kTfLiteOk)
      return Fail("resizing output tensor %d failed", t);
    return true;
  }
};

// Pack the filter and the per-channel vectors (once per filter buffer).
void PackBconv(TfLiteContext* c, Kernel* k) {
  const int kpos = k->kh * k->kw, W = k->words, G = k->groups, B = k->blocks;
  const uint32_t* src = static_cast<const uint32_t*>(c->tensors[k->filter].data);
  k->packed.assign(static_cast<size_t>(G) * B * kpos * W * kLanes, 0u);
  k->wsum.assign(static_cast<size_t>(G) * B * kpos * kLanes, 0);
  for (int g = 0; g < G; ++g)
    for (int co = 0; co < k->cout_group; ++co) {
      const int b = co / kLanes, lane = co % kLanes, oc = g * k->cout_group + co;
      for (int p = 0; p < kpos; ++p) {
        int ones = 0;
        for (int w = 0; w < W; ++w) {
          const uint32_t bits = src[(static_cast<size_t>(oc) * kpos + p) * W + w];
          k->packed[((((static_cast<size_t>(g) * B + b) * kpos + p) * W + w) * kLanes) + lane] =
              bits;
          ones += __builtin_popcount(bits);
        }
        k->wsum[(((static_cast<size_t>(g) * B + b) * kpos + p) * kLanes) + lane] =
            k->cin_group - 2 * ones;
      }
    }
  const size_t padded = static_cast<size_t>(G) * B * kLanes;
  k->mult.assign(padded, 1.0f);
  k->add.assign(padded, 0.0f);
  k->thresh.assign(padded, 0);
  for (int g = 0; g < G; ++g)
    for (int co = 0; co < k->cout_group; ++co) {
      const size_t dst = (static_cast<size_t>(g) * B) * kLanes + co;
      const int oc = g * k->cout_group + co;
      if (k->multiplier >= 0)
        k->mult[dst] = static_cast<const float*>(c->tensors[k->multiplier].data)[oc];
      if (k->bias >= 0) k->add[dst] = static_cast<const float*>(c->tensors[k->bias].data)[oc];
      if (k->threshold >= 0)
        k->thresh[dst] = static_cast<const int32_t*>(c->tensors[k->threshold].data)[oc];
    }
  k->zeros.assign(static_cast<size_t>(Dim(c, k->input, -1)) + kLanes, 0u);
  // Fused activation (TFLite's enum): NONE, RELU, RELU_N1_TO_1, RELU6.
  k->clamp_min = -(1 << 30);
  k->clamp_max = 1 << 30;
  if (k->activation == 1) k->clamp_min = 0;
  if (k->activation == 2) {
    k->clamp_min = -1;
    k->clamp_max = 1;
  }
  if (k->activation == 3) {
    k->clamp_min = 0;
    k->clamp_max = 6;
  }
  k->packed_from = c->tensors[k->filter].data;
}

bool PrepareBconv(Checker& ck) {
  TfLiteContext* c = ck.c;
  Kernel* k = ck.k;
  if (!ck.Tensor(k->input, "input", kTfLiteInt32, 4)) return false;
  if (!ck.Tensor(k->filter, "filter", kTfLiteInt32, 4)) return false;
  if (c->tensors[k->filter].data == nullptr)
    return ck.Fail("filter tensor %d is not a constant", k->filter);
  const int N = Dim(c, k->input, 0), H = Dim(c, k->input, 1), Wd = Dim(c, k->input, 2);
  const int in_words = Dim(c, k->input, 3);
  k->cout = Dim(c, k->filter, 0);
  k->kh = Dim(c, k->filter, 1);
  k->kw = Dim(c, k->filter, 2);
  k->words = Dim(c, k->filter, 3);
  if (N < 1 || H < 1 || Wd < 1)
    return ck.Fail("input shape [%d, %d, %d, %d] is empty", N, H, Wd, in_words);
  if (k->cout < 1 || k->words < 1)
    return ck.Fail("filter has %d outputs of %d words", k->cout, k->words);
  if (!ck.Range(k->kh, "filter height", 1, kMaxKernel) ||
      !ck.Range(k->kw, "filter width", 1, kMaxKernel))
    return false;
  const int64_t filter_values = static_cast<int64_t>(k->cout) * k->kh * k->kw * k->words;
  if (filter_values > kMaxElements / 4 ||
      c->tensors[k->filter].bytes < static_cast<size_t>(filter_values) * 4)
    return ck.Fail("filter tensor %d holds %zu bytes; its shape needs %lld", k->filter,
                   c->tensors[k->filter].bytes, static_cast<long long>(filter_values * 4));
  if (!ck.Range(k->channels_in, "channels_in", 1, kMaxDim)) return false;
  if (in_words != Words(k->channels_in))
    return ck.Fail("input has %d packed words per pixel; channels_in %d needs %d", in_words,
                   k->channels_in, Words(k->channels_in));
  if (k->words == Words(k->channels_in)) {
    k->groups = 1;
    k->cin_group = k->channels_in;
  } else {
    k->cin_group = 32 * k->words;
    if (k->channels_in % k->cin_group != 0)
      return ck.Fail(
          "filter has %d words per position, which neither covers channels_in %d "
          "nor divides it into groups of 32-channel words",
          k->words, k->channels_in);
    k->groups = k->channels_in / k->cin_group;
  }
  if (k->cout % k->groups != 0)
    return ck.Fail("%d output channels do not split into %d groups", k->cout, k->groups);
  if (static_cast<int64_t>(k->kh) * k->kw * k->cin_group > (1 << 28))
    return ck.Fail("filter of %dx%dx%d is too large", k->kh, k->kw, k->cin_group);
  k->cout_group = k->cout / k->groups;
  k->blocks = (k->cout_group + kLanes - 1) / kLanes;
  if (!ck.Range(k->stride_h, "stride_height", 1, kMaxStride) ||
      !ck.Range(k->stride_w, "stride_width", 1, kMaxStride) ||
      !ck.Range(k->dilation_h, "dilation_height_factor", 1, kMaxStride) ||
      !ck.Range(k->dilation_w, "dilation_width_factor", 1, kMaxStride) ||
      !ck.Range(k->padding, "padding", 0, 1) || !ck.Range(k->pad_values, "pad_values", 0, 1) ||
      !ck.Range(k->activation, "fused_activation_function", 0, 3))
    return false;
  if (!ValidTensor(c, k->output)) return ck.Fail("output tensor index %d is invalid", k->output);
  const bool float_out = c->tensors[k->output].type == kTfLiteFloat32;
  if (!ck.Tensor(k->output, "output", float_out ? kTfLiteFloat32 : kTfLiteInt32, 4)) return false;
  if (k->multiplier >= 0 && !ck.Constant(k->multiplier, "multiplier", kTfLiteFloat32, k->cout))
    return false;
  if (k->bias >= 0 && !ck.Constant(k->bias, "bias", kTfLiteFloat32, k->cout)) return false;
  if (!float_out) {
    if (k->threshold < 0) return ck.Fail("bitpacked output without a threshold tensor");
    if (!ck.Constant(k->threshold, "threshold", kTfLiteInt32, k->cout)) return false;
    if (k->pad_values == 0 && k->padding == 0)
      return ck.Fail("bitpacked output with zero padding is not supported");
    if (!k->post.empty()) return ck.Fail("fused float ops after a bitpacked output");
  }
  for (const Elementwise& e : k->post)
    if (e.op != Elementwise::kRelu && e.channels != k->cout)
      return ck.Fail("a fused op has %d values for %d channels", e.channels, k->cout);
  const int64_t Ho = OutSize(H, k->kh, k->stride_h, k->dilation_h, k->padding);
  const int64_t Wo = OutSize(Wd, k->kw, k->stride_w, k->dilation_w, k->padding);
  if (Ho < 1 || Wo < 1)
    return ck.Fail("input of %dx%d is smaller than the dilated %dx%d filter", H, Wd, k->kh, k->kw);
  const int out_c = float_out ? k->cout : Words(k->cout);
  if (static_cast<int64_t>(N) * Ho * Wo * out_c >= kMaxElements)
    return ck.Fail("output of %lld values is too large",
                   static_cast<long long>(static_cast<int64_t>(N) * Ho * Wo * out_c));
  if (!ck.Resize(k->output, {N, static_cast<int>(Ho), static_cast<int>(Wo), out_c})) return false;
  k->in_bytes = static_cast<size_t>(Elements(c, k->input)) * 4;
  k->out_bytes = static_cast<size_t>(N) * Ho * Wo * out_c * 4;
  if (k->packed_from != c->tensors[k->filter].data) PackBconv(c, k);
  return true;
}

bool PrepareQuantize(Checker& ck) {
  TfLiteContext* c = ck.c;
  Kernel* k = ck.k;
  if (!ck.Tensor(k->input, "input", kTfLiteFloat32, -1)) return false;
  if (!ck.Tensor(k->output, "output", kTfLiteInt32, -1)) return false;
  const int C = Dim(c, k->input, -1);
  if (C < 1) return ck.Fail("input has %d channels", C);
  for (const Elementwise& e : k->pre)
    if (e.channels != C) return ck.Fail("a fused op has %d values for %d channels", e.channels, C);
  std::vector<int> dims(Dims(c, k->input)->data, Dims(c, k->input)->data + Dims(c, k->input)->size);
  dims.back() = Words(C);
  if (!ck.Resize(k->output, dims)) return false;
  k->in_bytes = static_cast<size_t>(Elements(c, k->input)) * 4;
  k->out_bytes = static_cast<size_t>(Elements(c, k->output)) * 4;
  return true;
}

bool PrepareDequantize(Checker& ck) {
  TfLiteContext* c = ck.c;
  Kernel* k = ck.k;
  if (!ck.Tensor(k->input, "input", kTfLiteInt32, -1)) return false;
  if (!ck.Tensor(k->output, "output", kTfLiteFloat32, -1)) return false;
  const int C = Dim(c, k->output, -1), IW = Dim(c, k->input, -1);
  if (C < 1 || IW != Words(C))
    return ck.Fail("input has %d packed words per pixel for %d output channels", IW, C);
  std::vector<int> dims(Dims(c, k->input)->data, Dims(c, k->input)->data + Dims(c, k->input)->size);
  dims.back() = C;
  if (!ck.Resize(k->output, dims)) return false;
  k->in_bytes = static_cast<size_t>(Elements(c, k->input)) * 4;
  k->out_bytes = static_cast<size_t>(Elements(c, k->output)) * 4;
  return true;
}

bool PrepareBMaxPool(Checker& ck) {
  TfLiteContext* c = ck.c;
  Kernel* k = ck.k;
  if (!ck.Tensor(k->input, "input", kTfLiteInt32, 4)) return false;
  if (!ck.Tensor(k->output, "output", kTfLiteInt32, 4)) return false;
  if (!ck.Range(k->filter_h, "filter_height", 1, kMaxKernel) ||
      !ck.Range(k->filter_w, "filter_width", 1, kMaxKernel) ||
      !ck.Range(k->stride_h, "stride_height", 1, kMaxStride) ||
      !ck.Range(k->stride_w, "stride_width", 1, kMaxStride) ||
      !ck.Range(k->padding, "padding", 0, 1))
    return false;
  const int N = Dim(c, k->input, 0), H = Dim(c, k->input, 1), Wd = Dim(c, k->input, 2);
  const int words = Dim(c, k->input, 3);
  if (N < 1 || H < 1 || Wd < 1 || words < 1)
    return ck.Fail("input shape [%d, %d, %d, %d] is empty", N, H, Wd, words);
  const int64_t Ho = OutSize(H, k->filter_h, k->stride_h, 1, k->padding);
  const int64_t Wo = OutSize(Wd, k->filter_w, k->stride_w, 1, k->padding);
  if (Ho < 1 || Wo < 1)
    return ck.Fail("input of %dx%d is smaller than the %dx%d window", H, Wd, k->filter_h,
                   k->filter_w);
  if (!ck.Resize(k->output, {N, static_cast<int>(Ho), static_cast<int>(Wo), words})) return false;
  k->in_bytes = static_cast<size_t>(Elements(c, k->input)) * 4;
  k->out_bytes = static_cast<size_t>(Elements(c, k->output)) * 4;
  return true;
}

// ---- the binary convolution: one tile of T output pixels for one group and block

struct Tile {
  const Kernel* k;
  int g, b;
  const uint32_t* const* rows;  // rows[t * kpos + p]: the input words of position p, pixel t
  const bool* padded_any;       // per pixel: any zero-padded position
  const bool* padded;           // per pixel and position
  float* out_float;
  uint32_t* out_bits;
  int64_t pixel0;
};

// The output transform of one pixel and block from its popcounts (scalar).
inline void OutputScalar(const Tile& a, int t, const int32_t* acc) {
  const Kernel& k = *a.k;
  const int kpos = k.kh * k.kw, co0 = a.b * kLanes, lanes = std::min(kLanes, k.cout_group - co0);
  const size_t chan = static_cast<size_t>(a.g) * k.blocks * kLanes + co0;
  const int oc0 = a.g * k.cout_group + co0;
  const int64_t pixel = a.pixel0 + t;
  const int ktotal = kpos * k.cin_group;
  for (int l = 0; l < lanes; ++l) {
    if (a.out_float != nullptr) {
      int32_t dot = ktotal - 2 * acc[l];
      if (a.padded_any[t]) {
        const int32_t* S =
            k.wsum.data() + (static_cast<size_t>(a.g) * k.blocks + a.b) * kpos * kLanes;
        for (int p = 0; p < kpos; ++p)
          if (a.padded[t * kpos + p]) dot -= S[p * kLanes + l];
      }
      dot = std::min(std::max(dot, k.clamp_min), k.clamp_max);
      float y = std::fma(static_cast<float>(dot), k.mult[chan + l], k.add[chan + l]);
      for (const Elementwise& e : k.post) {
        if (e.op == Elementwise::kRelu)
          y = std::max(y, 0.0f);
        else if (e.op == Elementwise::kMul)
          y *= e.values[oc0 + l];
        else
          y += e.values[oc0 + l];
      }
      a.out_float[pixel * k.cout + oc0 + l] = y;
    } else if (acc[l] > k.thresh[chan + l]) {
      const int oc = oc0 + l;
      a.out_bits[pixel * Words(k.cout) + (oc >> 5)] |= 1u << (oc & 31);
    }
  }
}

template <int T>
void TileScalar(const Tile& a) {
  const Kernel& k = *a.k;
  const int kpos = k.kh * k.kw, W = k.words;
  const uint32_t* F =
      k.packed.data() + (static_cast<size_t>(a.g) * k.blocks + a.b) * kpos * W * kLanes;
  int32_t acc[T][kLanes] = {};
  for (int p = 0; p < kpos; ++p) {
    const uint32_t* Fp = F + static_cast<size_t>(p) * W * kLanes;
    for (int w = 0; w < W; ++w)
      for (int t = 0; t < T; ++t) {
        const uint32_t x = a.rows[t * kpos + p][w];
        for (int l = 0; l < kLanes; ++l) acc[t][l] += __builtin_popcount(x ^ Fp[w * kLanes + l]);
      }
  }
  for (int t = 0; t < T; ++t) OutputScalar(a, t, acc[t]);
}

#if LCE_NATIVE_X86
template <int T>
LCE_TARGET_AVX512 void TileAvx512(const Tile& a) {
  const Kernel& k = *a.k;
  const int kpos = k.kh * k.kw, W = k.words, B = k.blocks;
  const int co0 = a.b * kLanes, lanes = std::min(kLanes, k.cout_group - co0);
  const uint32_t* F = k.packed.data() + (static_cast<size_t>(a.g) * B + a.b) * kpos * W * kLanes;
  const size_t chan = static_cast<size_t>(a.g) * B * kLanes + co0;
  const int oc0 = a.g * k.cout_group + co0;
  const int ktotal = kpos * k.cin_group;
  __m512i acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_si512();
  for (int p = 0; p < kpos; ++p) {
    const uint32_t* Fp = F + static_cast<size_t>(p) * W * kLanes;
    for (int w = 0; w < W; ++w) {
      const __m512i fw = _mm512_loadu_si512(Fp + w * kLanes);
      for (int t = 0; t < T; ++t) {
        const __m512i x = _mm512_set1_epi32(static_cast<int>(a.rows[t * kpos + p][w]));
        acc[t] = _mm512_add_epi32(acc[t], _mm512_popcnt_epi32(_mm512_xor_si512(x, fw)));
      }
    }
  }
  const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1u);
  for (int t = 0; t < T; ++t) {
    const int64_t pixel = a.pixel0 + t;
    if (a.out_float != nullptr) {
      __m512i dot = _mm512_sub_epi32(_mm512_set1_epi32(ktotal), _mm512_slli_epi32(acc[t], 1));
      if (a.padded_any[t]) {
        const int32_t* S = k.wsum.data() + (static_cast<size_t>(a.g) * B + a.b) * kpos * kLanes;
        for (int p = 0; p < kpos; ++p)
          if (a.padded[t * kpos + p])
            dot = _mm512_sub_epi32(dot, _mm512_loadu_si512(S + p * kLanes));
      }
      dot = _mm512_max_epi32(dot, _mm512_set1_epi32(k.clamp_min));
      dot = _mm512_min_epi32(dot, _mm512_set1_epi32(k.clamp_max));
      __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(k.mult.data() + chan),
                                 _mm512_loadu_ps(k.add.data() + chan));
      for (const Elementwise& e : k.post) {
        if (e.op == Elementwise::kRelu)
          y = _mm512_max_ps(y, _mm512_setzero_ps());
        else if (e.op == Elementwise::kMul)
          y = _mm512_mul_ps(y, _mm512_loadu_ps(e.values.data() + oc0));
        else
          y = _mm512_add_ps(y, _mm512_loadu_ps(e.values.data() + oc0));
      }
      _mm512_mask_storeu_ps(a.out_float + pixel * k.cout + oc0, mask, y);
    } else {
      const __mmask16 bits =
          _mm512_mask_cmpgt_epi32_mask(mask, acc[t], _mm512_loadu_si512(k.thresh.data() + chan));
      const uint64_t shifted = static_cast<uint64_t>(bits) << (oc0 & 31);
      uint32_t* word = a.out_bits + pixel * Words(k.cout) + (oc0 >> 5);
      word[0] |= static_cast<uint32_t>(shifted);
      if (shifted >> 32) word[1] |= static_cast<uint32_t>(shifted >> 32);
    }
  }
}

// AVX2 has no vector popcount: count bits per byte with a nibble lookup (vpshufb), add
// the byte counts for up to 31 words (31 * 8 < 256), then widen to 32-bit lanes.
LCE_TARGET_AVX2 inline __m256i ByteCounts(__m256i v, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

LCE_TARGET_AVX2 inline __m256i Widen(__m256i bytes) {
  const __m256i pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

template <int T>
LCE_TARGET_AVX2 void TileAvx2(const Tile& a) {
  const Kernel& k = *a.k;
  const int kpos = k.kh * k.kw, W = k.words, B = k.blocks;
  const int co0 = a.b * kLanes, lanes = std::min(kLanes, k.cout_group - co0);
  const uint32_t* F = k.packed.data() + (static_cast<size_t>(a.g) * B + a.b) * kpos * W * kLanes;
  const size_t chan = static_cast<size_t>(a.g) * B * kLanes + co0;
  const int oc0 = a.g * k.cout_group + co0;
  const int ktotal = kpos * k.cin_group;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i acc[T][2], bytes[T][2];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2; ++h) acc[t][h] = bytes[t][h] = _mm256_setzero_si256();
  int steps = 0;
  for (int p = 0; p < kpos; ++p) {
    const uint32_t* Fp = F + static_cast<size_t>(p) * W * kLanes;
    for (int w = 0; w < W; ++w) {
      const __m256i f0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Fp + w * kLanes));
      const __m256i f1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Fp + w * kLanes + 8));
      for (int t = 0; t < T; ++t) {
        const __m256i x = _mm256_set1_epi32(static_cast<int>(a.rows[t * kpos + p][w]));
        bytes[t][0] = _mm256_add_epi8(bytes[t][0], ByteCounts(_mm256_xor_si256(x, f0), lut, low));
        bytes[t][1] = _mm256_add_epi8(bytes[t][1], ByteCounts(_mm256_xor_si256(x, f1), lut, low));
      }
      if (++steps == 31) {
        for (int t = 0; t < T; ++t)
          for (int h = 0; h < 2; ++h) {
            acc[t][h] = _mm256_add_epi32(acc[t][h], Widen(bytes[t][h]));
            bytes[t][h] = _mm256_setzero_si256();
          }
        steps = 0;
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2; ++h) acc[t][h] = _mm256_add_epi32(acc[t][h], Widen(bytes[t][h]));
  const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int t = 0; t < T; ++t) {
    const int64_t pixel = a.pixel0 + t;
    for (int h = 0; h < 2; ++h) {
      const int base = 8 * h;
      if (base >= lanes) break;
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes - base), lane_index);
      if (a.out_float != nullptr) {
        __m256i dot = _mm256_sub_epi32(_mm256_set1_epi32(ktotal), _mm256_slli_epi32(acc[t][h], 1));
        if (a.padded_any[t]) {
          const int32_t* S = k.wsum.data() + (static_cast<size_t>(a.g) * B + a.b) * kpos * kLanes;
          for (int p = 0; p < kpos; ++p)
            if (a.padded[t * kpos + p])
              dot = _mm256_sub_epi32(
                  dot, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(S + p * kLanes + base)));
        }
        dot = _mm256_max_epi32(dot, _mm256_set1_epi32(k.clamp_min));
        dot = _mm256_min_epi32(dot, _mm256_set1_epi32(k.clamp_max));
        __m256 y =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(k.mult.data() + chan + base),
                            _mm256_loadu_ps(k.add.data() + chan + base));
        for (const Elementwise& e : k.post) {
          if (e.op == Elementwise::kRelu)
            y = _mm256_max_ps(y, _mm256_setzero_ps());
          else if (e.op == Elementwise::kMul)
            y = _mm256_mul_ps(y, _mm256_loadu_ps(e.values.data() + oc0 + base));
          else
            y = _mm256_add_ps(y, _mm256_loadu_ps(e.values.data() + oc0 + base));
        }
        _mm256_maskstore_ps(a.out_float + pixel * k.cout + oc0 + base, mask, y);
      } else {
        const __m256i th =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.thresh.data() + chan + base));
        const __m256i gt = _mm256_and_si256(_mm256_cmpgt_epi32(acc[t][h], th), mask);
        const uint32_t bits = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(gt)));
        const uint64_t shifted = static_cast<uint64_t>(bits) << ((oc0 + base) & 31);
        uint32_t* word = a.out_bits + pixel * Words(k.cout) + ((oc0 + base) >> 5);
        word[0] |= static_cast<uint32_t>(shifted);
        if (shifted >> 32) word[1] |= static_cast<uint32_t>(shifted >> 32);
      }
    }
  }
}
#endif

// Runs `count` pixels starting at tile `a` with the widest tiles the ISA does well.
void RunTiles(Isa isa, Tile a, int count) {
  const int kpos = a.k->kh * a.k->kw;
  int t = 0;
  auto at = [&](int offset) {
    Tile s = a;
    s.rows = a.rows + offset * kpos;
    s.padded_any = a.padded_any + offset;
    s.padded = a.padded + offset * kpos;
    s.pixel0 = a.pixel0 + offset;
    return s;
  };
  while (t < count) {
    const int left = count - t;
#if LCE_NATIVE_X86
    if (isa == Isa::kAvx512) {
      if (left >= 8) {
        TileAvx512<8>(at(t));
        t += 8;
      } else if (left >= 4) {
        TileAvx512<4>(at(t));
        t += 4;
      } else if (left >= 2) {
        TileAvx512<2>(at(t));
        t += 2;
      } else {
        TileAvx512<1>(at(t));
        t += 1;
      }
      continue;
    }
    if (isa == Isa::kAvx2) {
      if (left >= 4) {
        TileAvx2<4>(at(t));
        t += 4;
      } else if (left >= 2) {
        TileAvx2<2>(at(t));
        t += 2;
      } else {
        TileAvx2<1>(at(t));
        t += 1;
      }
      continue;
    }
#endif
    if (left >= 8) {
      TileScalar<8>(at(t));
      t += 8;
    } else if (left >= 4) {
      TileScalar<4>(at(t));
      t += 4;
    } else if (left >= 2) {
      TileScalar<2>(at(t));
      t += 2;
    } else {
      TileScalar<1>(at(t));
      t += 1;
    }
  }
}

constexpr int kTile = 8;

void RunBconv(TfLiteContext* c, const Kernel& k, Pool* pool, Isa isa) {
  const int N = Dim(c, k.input, 0), H = Dim(c, k.input, 1), Wd = Dim(c, k.input, 2);
  const int in_words = Dim(c, k.input, 3);
  const int Ho = Dim(c, k.output, 1), Wo = Dim(c, k.output, 2);
  const int pad_t = LeadingPad(H, Ho, k.kh, k.stride_h, k.dilation_h, k.padding);
  const int pad_l = LeadingPad(Wd, Wo, k.kw, k.stride_w, k.dilation_w, k.padding);
  const uint32_t* in = static_cast<const uint32_t*>(c->tensors[k.input].data);
  const bool float_out = c->tensors[k.output].type == kTfLiteFloat32;
  float* out_float = float_out ? static_cast<float*>(c->tensors[k.output].data) : nullptr;
  uint32_t* out_bits = float_out ? nullptr : static_cast<uint32_t*>(c->tensors[k.output].data);
  if (!float_out)
    std::memset(out_bits, 0, static_cast<size_t>(N) * Ho * Wo * Words(k.cout) * sizeof(uint32_t));
  const int kpos = k.kh * k.kw;
  const bool zero_pad = k.pad_values == 0;
  const double work = static_cast<double>(N) * Ho * Wo * k.groups * k.blocks * kpos * k.words;
  pool->Run(
      N * Ho,
      [&](int row) {
        const int n = row / Ho, oh = row % Ho;
        std::vector<const uint32_t*> rows(static_cast<size_t>(kTile) * kpos);
        std::vector<char> padded(static_cast<size_t>(kTile) * kpos);
        bool padded_any[kTile];
        for (int ow0 = 0; ow0 < Wo; ow0 += kTile) {
          const int count = std::min(kTile, Wo - ow0);
          for (int g = 0; g < k.groups; ++g) {
            for (int t = 0; t < count; ++t) {
              padded_any[t] = false;
              for (int i = 0; i < k.kh; ++i)
                for (int j = 0; j < k.kw; ++j) {
                  const int ih = oh * k.stride_h - pad_t + i * k.dilation_h;
                  const int iw = (ow0 + t) * k.stride_w - pad_l + j * k.dilation_w;
                  const int p = t * kpos + i * k.kw + j;
                  const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < Wd;
                  rows[p] = inside
                                ? in + ((static_cast<int64_t>(n) * H + ih) * Wd + iw) * in_words +
                                      g * k.words
                                : k.zeros.data();
                  padded[p] = !inside && zero_pad;
                  padded_any[t] |= padded[p] != 0;
                }
            }
            Tile a{&k,          g,          0,
                   rows.data(), padded_any, reinterpret_cast<const bool*>(padded.data()),
                   out_float,   out_bits,   (static_cast<int64_t>(n) * Ho + oh) * Wo + ow0};
            for (int b = 0; b < k.blocks; ++b) {
              a.b = b;
              RunTiles(isa, a, count);
            }
          }
        }
      },
      work);
}

// per_pixel(px) for px in [0, pixels), in chunks of about 4096 channel values per task.
template <typename F>
void ForEachPixel(Pool* pool, int64_t pixels, int channels, double work, const F& per_pixel) {
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max(1, channels));
  const int tasks = static_cast<int>((pixels + chunk - 1) / chunk);
  pool->Run(
      tasks,
      [&](int task) {
        const int64_t end = std::min(pixels, (task + 1) * chunk);
        for (int64_t px = task * chunk; px < end; ++px) per_pixel(px);
      },
      work);
}

void QuantizeScalar(const Kernel& k, const float* x, uint32_t* o, int C, int OW) {
  for (int w = 0; w < OW; ++w) {
    const int base = w * 32;
    uint32_t bits = 0;
    for (int i = 0, n = std::min(32, C - base); i < n; ++i) {
      float v = x[base + i];
      for (const Elementwise& e : k.pre)
        v = e.op == Elementwise::kMul ? v * e.values[base + i] : v + e.values[base + i];
      bits |= static_cast<uint32_t>(v < 0.0f) << i;
    }
    o[w] = bits;
  }
}

#if LCE_NATIVE_X86
LCE_TARGET_AVX512 void QuantizeAvx512(const Kernel& k, const float* x, uint32_t* o, int C, int OW) {
  const __m512 zero = _mm512_setzero_ps();
  for (int w = 0; w < OW; ++w) {
    uint32_t bits = 0;
    for (int half = 0; half < 2; ++half) {
      const int from = w * 32 + 16 * half, count = std::min(16, C - from);
      if (count <= 0) break;
      const __mmask16 m = static_cast<__mmask16>((1u << count) - 1u);
      __m512 v = _mm512_maskz_loadu_ps(m, x + from);
      for (const Elementwise& e : k.pre) {
        const __m512 c = _mm512_loadu_ps(e.values.data() + from);
        v = e.op == Elementwise::kMul ? _mm512_mul_ps(v, c) : _mm512_add_ps(v, c);
      }
      bits |= static_cast<uint32_t>(_mm512_mask_cmp_ps_mask(m, v, zero, _CMP_LT_OQ)) << (16 * half);
    }
    o[w] = bits;
  }
}

LCE_TARGET_AVX2 void QuantizeAvx2(const Kernel& k, const float* x, uint32_t* o, int C, int OW) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int w = 0; w < OW; ++w) {
    uint32_t bits = 0;
    for (int part = 0; part < 4; ++part) {
      const int from = w * 32 + 8 * part, count = std::min(8, C - from);
      if (count <= 0) break;
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane_index);
      __m256 v = _mm256_maskload_ps(x + from, m);
      for (const Elementwise& e : k.pre) {
        const __m256 c = _mm256_loadu_ps(e.values.data() + from);
        v = e.op == Elementwise::kMul ? _mm256_mul_ps(v, c) : _mm256_add_ps(v, c);
      }
      const __m256 lt = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), _mm256_castsi256_ps(m));
      bits |= static_cast<uint32_t>(_mm256_movemask_ps(lt)) << (8 * part);
    }
    o[w] = bits;
  }
}
#endif

void RunQuantize(TfLiteContext* c, const Kernel& k, Pool* pool, Isa isa) {
  const int C = Dim(c, k.input, -1), OW = Dim(c, k.output, -1);
  const int64_t pixels = Elements(c, k.input) / C;
  const float* in = static_cast<const float*>(c->tensors[k.input].data);
  uint32_t* out = static_cast<uint32_t*>(c->tensors[k.output].data);
  ForEachPixel(pool, pixels, C, static_cast<double>(pixels) * OW * 4, [&](int64_t px) {
    const float* x = in + px * C;
    uint32_t* o = out + px * OW;
#if LCE_NATIVE_X86
    if (isa == Isa::kAvx512) return QuantizeAvx512(k, x, o, C, OW);
    if (isa == Isa::kAvx2) return QuantizeAvx2(k, x, o, C, OW);
#endif
    (void)isa;
    QuantizeScalar(k, x, o, C, OW);
  });
}

void RunDequantize(TfLiteContext* c, const Kernel& k, Pool* pool) {
  const int C = Dim(c, k.output, -1), IW = Dim(c, k.input, -1);
  const int64_t pixels = Elements(c, k.output) / C;
  const uint32_t* in = static_cast<const uint32_t*>(c->tensors[k.input].data);
  float* out = static_cast<float*>(c->tensors[k.output].data);
  ForEachPixel(pool, pixels, C, static_cast<double>(pixels) * C, [&](int64_t px) {
    for (int ch = 0; ch < C; ++ch)
      out[px * C + ch] = ((in[px * IW + (ch >> 5)] >> (ch & 31)) & 1u) ? -1.0f : 1.0f;
  });
}

void RunBMaxPool(TfLiteContext* c, const Kernel& k, Pool* pool) {
  const int N = Dim(c, k.input, 0), H = Dim(c, k.input, 1), Wd = Dim(c, k.input, 2);
  const int words = Dim(c, k.input, 3);
  const int Ho = Dim(c, k.output, 1), Wo = Dim(c, k.output, 2);
  const int pad_t = LeadingPad(H, Ho, k.filter_h, k.stride_h, 1, k.padding);
  const int pad_l = LeadingPad(Wd, Wo, k.filter_w, k.stride_w, 1, k.padding);
  const uint32_t* in = static_cast<const uint32_t*>(c->tensors[k.input].data);
  uint32_t* out = static_cast<uint32_t*>(c->tensors[k.output].data);
  pool->Run(
      N * Ho,
      [&](int row) {
        const int n = row / Ho, oh = row % Ho;
        for (int ow = 0; ow < Wo; ++ow) {
          uint32_t* o = out + ((static_cast<int64_t>(n) * Ho + oh) * Wo + ow) * words;
          for (int w = 0; w < words; ++w) o[w] = 0xFFFFFFFFu;  // max of +-1 = AND of "is -1" bits
          for (int i = 0; i < k.filter_h; ++i) {
            const int ih = oh * k.stride_h - pad_t + i;
            if (ih < 0 || ih >= H) continue;
            for (int j = 0; j < k.filter_w; ++j) {
              const int iw = ow * k.stride_w - pad_l + j;
              if (iw < 0 || iw >= Wd) continue;
              const uint32_t* x = in + ((static_cast<int64_t>(n) * H + ih) * Wd + iw) * words;
              for (int w = 0; w < words; ++w) o[w] &= x[w];
            }
          }
        }
      },
      static_cast<double>(N) * Ho * Wo * words * k.filter_h * k.filter_w);
}

// ---------------------------------------------------------------------------------------
// The TFLite kernel of a delegated node (one LCE node each).

enum { kBuiltinAdd = 0, kBuiltinMul = 18, kBuiltinRelu = 19 };
enum { kTfLiteMmapRo = 1 };

bool ValidArray(const TfLiteIntArray* a, int min_size) {
  return a != nullptr && a->size >= min_size && a->size <= 64;
}

// If `node` is a float RELU, or a MUL / ADD of the tensor `x` and a constant (a scalar or
// one value per channel), without a fused activation and with the shape of `x`, fill `e`
// (values padded for vector loads) and return true.
bool ReadElementwise(TfLiteContext* c, const TfLiteNode* node, const TfLiteRegistration* reg, int x,
                     Elementwise* e) {
  if (!ValidArray(node->outputs, 1) || node->outputs->size != 1 || !ValidArray(node->inputs, 1))
    return false;
  const int y = node->outputs->data[0];
  if (!ValidTensor(c, x) || !ValidTensor(c, y)) return false;
  const TfLiteTensor& in = c->tensors[x];
  const TfLiteTensor& out = c->tensors[y];
  if (in.type != kTfLiteFloat32 || out.type != kTfLiteFloat32) return false;
  if (in.dims->size != out.dims->size || in.dims->size < 1) return false;
  for (int i = 0; i < in.dims->size; ++i)
    if (in.dims->data[i] != out.dims->data[i]) return false;
  const int C = in.dims->data[in.dims->size - 1];
  if (C < 1) return false;
  const size_t padded = static_cast<size_t>(Words(C)) * 32 + 2 * kLanes;
  if (reg->builtin_code == kBuiltinRelu) {
    if (node->inputs->size != 1 || node->inputs->data[0] != x) return false;
    e->op = Elementwise::kRelu;
    e->values.clear();
    e->channels = C;
    return true;
  }
  if (reg->builtin_code != kBuiltinAdd && reg->builtin_code != kBuiltinMul) return false;
  if (node->inputs->size != 2) return false;
  if (node->builtin_data != nullptr && *static_cast<const int*>(node->builtin_data) != 0)
    return false;  // a fused activation
  const int a = node->inputs->data[0], b = node->inputs->data[1];
  if (a != x && b != x) return false;
  const int k = a == x ? b : a;
  if (k == x || !ValidTensor(c, k)) return false;
  const TfLiteTensor& constant = c->tensors[k];
  if (constant.allocation_type != kTfLiteMmapRo || constant.data == nullptr ||
      constant.type != kTfLiteFloat32)
    return false;
  const int64_t n = Elements(c, k);
  const int last = constant.dims->size ? constant.dims->data[constant.dims->size - 1] : 1;
  if (!(n == 1 || (n == C && last == C))) return false;
  if (constant.bytes < static_cast<size_t>(n) * 4) return false;
  const float* v = static_cast<const float*>(constant.data);
  e->op = reg->builtin_code == kBuiltinMul ? Elementwise::kMul : Elementwise::kAdd;
  e->values.assign(padded, e->op == Elementwise::kMul ? 1.0f : 0.0f);
  for (int i = 0; i < C; ++i) e->values[i] = n == 1 ? v[0] : v[i];
  e->channels = C;
  return true;
}

// Init never fails silently: problems are kept in Kernel::error and reported by Prepare.
void* KernelInit(TfLiteContext* c, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* owner = static_cast<Delegate*>(params->delegate->data_);
  const TfLiteIntArray* nodes = params->nodes_to_replace;
  auto* k = new Kernel();
  k->owner = owner;
  k->kind = Kind::kQuantize;
  auto fail = [&](const std::string& what) {
    k->error = "lce_native: " + what;
    return k;
  };
  // The subset is [float ops] LceX [float ops], in execution order.
  int lce = -1;
  std::vector<TfLiteNode*> ns(nodes->size);
  std::vector<TfLiteRegistration*> rs(nodes->size);
  for (int i = 0; i < nodes->size; ++i) {
    if (c->GetNodeAndRegistration(c, nodes->data[i], &ns[i], &rs[i]) != kTfLiteOk)
      return fail("cannot read node " + std::to_string(nodes->data[i]));
    if (rs[i]->builtin_code == kTfLiteBuiltinCustom) {
      if (lce >= 0) return fail("two custom ops in one delegated subset");
      lce = i;
    }
  }
  if (lce < 0) return fail("no LCE op in a delegated subset");
  TfLiteNode* node = ns[lce];
  const TfLiteRegistration* reg = rs[lce];
  k->node = nodes->data[lce];
  const std::string name = reg->custom_name ? reg->custom_name : "";
  k->kind = name == "LceBconv2d"      ? Kind::kBconv
            : name == "LceQuantize"   ? Kind::kQuantize
            : name == "LceDequantize" ? Kind::kDequantize
                                      : Kind::kBMaxPool;
  const TfLiteIntArray* in = node->inputs;
  const int needed = k->kind == Kind::kBconv ? 2 : 1;
  if (!ValidArray(in, needed) || !ValidArray(node->outputs, 1))
    return fail(name + " (node " + std::to_string(k->node) + "): too few inputs or outputs");
  k->input = in->data[0];
  k->output = node->outputs->data[0];
  if (k->kind == Kind::kBconv) {
    k->filter = in->data[1];
    k->multiplier = in->size > 2 ? in->data[2] : -1;
    k->bias = in->size > 3 ? in->data[3] : -1;
    k->threshold = in->size > 4 ? in->data[4] : -1;
    k->channels_in = Option(node, "channels_in", 0);
    k->dilation_h = Option(node, "dilation_height_factor", 1);
    k->dilation_w = Option(node, "dilation_width_factor", 1);
    k->stride_h = Option(node, "stride_height", 1);
    k->stride_w = Option(node, "stride_width", 1);
    k->activation = Option(node, "fused_activation_function", 0);
    k->pad_values = Option(node, "pad_values", 0);
    k->padding = Option(node, "padding", 0);
  } else if (k->kind == Kind::kBMaxPool) {
    k->stride_h = Option(node, "stride_height", 1);
    k->stride_w = Option(node, "stride_width", 1);
    k->filter_h = Option(node, "filter_height", 1);
    k->filter_w = Option(node, "filter_width", 1);
    k->padding = Option(node, "padding", 0);
  }
  // Fused float ops before (walking back from the LCE node's input) and after.
  for (int i = lce - 1; i >= 0; --i) {
    TfLiteNode* n = ns[i];
    if (!ValidArray(n->outputs, 1) || !ValidArray(n->inputs, 1) || n->outputs->data[0] != k->input)
      return fail("a fused op before node " + std::to_string(k->node) + " does not feed it");
    Elementwise e;
    int x = -1;
    for (int j = 0; j < n->inputs->size && x < 0; ++j) {
      const int t = n->inputs->data[j];
      if (ValidTensor(c, t) && c->tensors[t].allocation_type != kTfLiteMmapRo) x = t;
    }
    if (x < 0 || !ReadElementwise(c, n, rs[i], x, &e))
      return fail("a fused op before node " + std::to_string(k->node) + " changed");
    k->pre.insert(k->pre.begin(), e);
    k->input = x;
  }
  for (int i = lce + 1; i < nodes->size; ++i) {
    TfLiteNode* n = ns[i];
    Elementwise e;
    if (!ReadElementwise(c, n, rs[i], k->output, &e))
      return fail("a fused op after node " + std::to_string(k->node) + " changed");
    k->post.push_back(e);
    k->output = n->outputs->data[0];
  }
  return k;
}

void KernelFree(TfLiteContext*, void* buffer) { delete static_cast<Kernel*>(buffer); }

TfLiteStatus KernelPrepare(TfLiteContext* c, TfLiteNode* node) {
  auto* k = static_cast<Kernel*>(node->user_data);
  if (k == nullptr) return kTfLiteError;
  if (k->error.empty()) {
    Checker ck{c, k};
    switch (k->kind) {
      case Kind::kBconv: PrepareBconv(ck); break;
      case Kind::kQuantize: PrepareQuantize(ck); break;
      case Kind::kDequantize: PrepareDequantize(ck); break;
      case Kind::kBMaxPool: PrepareBMaxPool(ck); break;
    }
  }
  if (!k->error.empty()) {
    if (k->owner->error.empty()) k->owner->error = k->error;
    c->ReportError(c, "%s", k->error.c_str());
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus KernelInvoke(TfLiteContext* c, TfLiteNode* node) {
  const auto* k = static_cast<const Kernel*>(node->user_data);
  if (k == nullptr || !k->error.empty()) return kTfLiteError;
  const TfLiteTensor& in = c->tensors[k->input];
  const TfLiteTensor& out = c->tensors[k->output];
  if (in.data == nullptr || out.data == nullptr || in.bytes < k->in_bytes ||
      out.bytes < k->out_bytes) {
    c->ReportError(c, "lce_native: %s (node %d): tensors changed size after Prepare",
                   KindName(k->kind), k->node);
    return kTfLiteError;
  }
  Delegate* d = k->owner;
  const auto start =
      d->profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  switch (k->kind) {
    case Kind::kBconv: RunBconv(c, *k, d->pool, d->isa); break;
    case Kind::kQuantize: RunQuantize(c, *k, d->pool, d->isa); break;
    case Kind::kDequantize: RunDequantize(c, *k, d->pool); break;
    case Kind::kBMaxPool: RunBMaxPool(c, *k, d->pool); break;
  }
  if (d->profile) {
    const int i = static_cast<int>(k->kind);
    d->seconds[i] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    d->calls[i] += 1;
  }
  return kTfLiteOk;
}

// Which LCE nodes this library runs (float32 or bitpacked int32 tensors; no int8).
bool Supported(TfLiteContext* c, const TfLiteNode* node, const std::string& name) {
  if (!ValidArray(node->inputs, 1) || !ValidArray(node->outputs, 1)) return false;
  auto type = [&](int i, bool input) {
    const TfLiteIntArray* a = input ? node->inputs : node->outputs;
    return i < a->size && ValidTensor(c, a->data[i]) ? c->tensors[a->data[i]].type : kTfLiteNoType;
  };
  if (name == "LceQuantize")
    return type(0, true) == kTfLiteFloat32 && type(0, false) == kTfLiteInt32;
  if (name == "LceDequantize")
    return type(0, true) == kTfLiteInt32 && type(0, false) == kTfLiteFloat32;
  if (name == "LceBMaxPool2d")
    return type(0, true) == kTfLiteInt32 && type(0, false) == kTfLiteInt32;
  if (name == "LceBconv2d") {
    if (type(0, true) != kTfLiteInt32 || type(1, true) != kTfLiteInt32) return false;
    const TfLiteType out = type(0, false);
    if (out == kTfLiteFloat32) return true;
    // Bitpacked output: LCE emits it with one-padding (or none) only.
    return out == kTfLiteInt32 && Option(node, "pad_values", 0) == 1 && node->inputs->size > 4 &&
           node->inputs->data[4] >= 0;
  }
  return false;
}

TfLiteStatus DelegatePrepare(TfLiteContext* c, TfLiteDelegate* base) {
  auto* d = static_cast<Delegate*>(base->data_);
  d->context = c;
  d->claimed = d->fused = 0;  // TFLite re-applies the delegate after some input resizes
  d->error.clear();
  int threads = d->threads > 0 ? d->threads : c->recommended_num_threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (d->pool == nullptr || d->pool->size() != threads) {
    delete d->pool;
    d->pool = new Pool(threads);
  }
  TfLiteIntArray* plan = nullptr;
  if (c->GetExecutionPlan(c, &plan) != kTfLiteOk || plan == nullptr) return kTfLiteError;
  const int count = plan->size;
  const size_t T = c->tensors_size;
  std::vector<TfLiteNode*> nodes(count);
  std::vector<TfLiteRegistration*> regs(count);
  // Who reads each tensor (model outputs count as readers), who writes it.
  std::vector<int> readers(T, 0), reader(T, -1), writer(T, -1);
  auto valid = [&](int t) { return t >= 0 && static_cast<size_t>(t) < T; };
  for (int t : d->protect)
    if (valid(t)) readers[t] += 2;
  for (int i = 0; i < count; ++i) {
    if (c->GetNodeAndRegistration(c, plan->data[i], &nodes[i], &regs[i]) != kTfLiteOk)
      return kTfLiteError;
    if (!ValidArray(nodes[i]->inputs, 0) || !ValidArray(nodes[i]->outputs, 0)) return kTfLiteError;
    for (int j = 0; j < nodes[i]->inputs->size; ++j) {
      const int t = nodes[i]->inputs->data[j];
      if (valid(t)) {
        readers[t] += 1;
        reader[t] = i;
      }
    }
    for (int j = 0; j < nodes[i]->outputs->size; ++j) {
      const int t = nodes[i]->outputs->data[j];
      if (valid(t)) writer[t] = i;
    }
  }
  std::vector<char> taken(count, 0);
  std::vector<int> lce_positions;
  for (int i = 0; i < count; ++i) {
    if (regs[i]->builtin_code != kTfLiteBuiltinCustom || regs[i]->custom_name == nullptr) continue;
    const std::string name = regs[i]->custom_name;
    if (name.rfind("Lce", 0) != 0) continue;
    if (Supported(c, nodes[i], name)) {
      lce_positions.push_back(i);
    } else if (d->error.empty()) {
      d->error = "node " + std::to_string(plan->data[i]) + " (" + name +
                 ") has tensors these kernels do not run (int8, or invalid)";
    }
  }
  auto fusable = [&](int i, int x) {
    Elementwise e;
    return i >= 0 && !taken[i] && regs[i]->builtin_code != kTfLiteBuiltinCustom &&
           ReadElementwise(c, nodes[i], regs[i], x, &e);
  };
  // LceQuantize first: the MUL / ADD right before it (a BatchNorm in front of the sign).
  std::vector<std::vector<int>> chains(count);
  for (int i : lce_positions) {
    taken[i] = 1;
    chains[i] = {i};
    if (!d->fuse || std::string(regs[i]->custom_name) != "LceQuantize") continue;
    int t = nodes[i]->inputs->data[0];
    for (int step = 0; step < 3 && valid(t); ++step) {
      const int w = writer[t];
      if (w < 0 || w != chains[i].front() - 1 || readers[t] != 1) break;
      int x = -1;
      for (int j = 0; j < nodes[w]->inputs->size && x < 0; ++j) {
        const int u = nodes[w]->inputs->data[j];
        if (valid(u) && c->tensors[u].allocation_type != kTfLiteMmapRo) x = u;
      }
      if (x < 0 || regs[w]->builtin_code == kBuiltinRelu || !fusable(w, x)) break;
      taken[w] = 1;
      chains[i].insert(chains[i].begin(), w);
      t = x;
    }
  }
  // Then a float LceBconv2d: the ReLU / MUL / ADD right after it.
  for (int i : lce_positions) {
    if (!d->fuse || std::string(regs[i]->custom_name) != "LceBconv2d") continue;
    int t = nodes[i]->outputs->data[0];
    if (!valid(t) || c->tensors[t].type != kTfLiteFloat32) continue;
    for (int step = 0; step < 3; ++step) {
      const int r = reader[t];
      if (readers[t] != 1 || r != chains[i].back() + 1 || !fusable(r, t)) break;
      taken[r] = 1;
      chains[i].push_back(r);
      t = nodes[r]->outputs->data[0];
    }
  }
  // TFLite 2.16's C API takes the registration by value; its layout is pinned by the
  // static_asserts in tflite_abi.h and checked against the running TFLite by native.py.
  TfLiteRegistration reg{};
  reg.init = KernelInit;
  reg.free = KernelFree;
  reg.prepare = KernelPrepare;
  reg.invoke = KernelInvoke;
  reg.builtin_code = kTfLiteBuiltinCustom;
  reg.custom_name = "LceNative";
  reg.version = 1;
  for (int i : lce_positions) {
    std::vector<int> subset(1 + chains[i].size());
    subset[0] = static_cast<int>(chains[i].size());
    for (size_t j = 0; j < chains[i].size(); ++j) subset[j + 1] = plan->data[chains[i][j]];
    if (c->ReplaceNodeSubsetsWithDelegateKernels(
            c, reg, reinterpret_cast<const TfLiteIntArray*>(subset.data()), base) != kTfLiteOk)
      return kTfLiteError;
    ++d->claimed;
    d->fused += static_cast<int>(chains[i].size()) - 1;
  }
  return kTfLiteOk;
}

}  // namespace

extern "C" {

LCE_NATIVE_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values,
                                                                size_t count,
                                                                void (*report_error)(const char*)) {
  auto* d = new Delegate();
  std::memset(&d->base, 0, sizeof d->base);
  d->base.data_ = d;
  d->base.Prepare = DelegatePrepare;
  d->base.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  d->isa = BestIsa();
  for (size_t i = 0; i < count; ++i) {
    std::string error;
    if (std::strcmp(keys[i], "num_threads") == 0) {
      d->threads = std::max(0, std::min(256, std::atoi(values[i])));
    } else if (std::strcmp(keys[i], "fuse") == 0) {
      d->fuse = std::atoi(values[i]) != 0;
    } else if (std::strcmp(keys[i], "isa") == 0) {
      const std::string v = values[i];
      const Isa isa = v == "avx512" ? Isa::kAvx512 : v == "avx2" ? Isa::kAvx2 : Isa::kScalar;
      if (v != "auto" && v != "avx512" && v != "avx2" && v != "scalar")
        error = "lce_native: unknown isa " + v + " (valid: auto, avx512, avx2, scalar)";
      else if (v != "auto" && !CpuHas(isa))
        error = "lce_native: this CPU cannot run the " + v + " kernels";
      else if (v != "auto")
        d->isa = isa;
    } else if (std::strcmp(keys[i], "protect") == 0) {
      for (const char* p = values[i]; *p;) {
        char* end;
        const long t = std::strtol(p, &end, 10);
        if (end == p) break;
        if (t >= 0 && t < (1L << 30)) d->protect.push_back(static_cast<int>(t));
        p = *end == ',' ? end + 1 : end;
      }
    } else {
      error = std::string("lce_native: unknown option ") + keys[i];
    }
    if (!error.empty()) {
      if (report_error != nullptr) report_error(error.c_str());
      delete d;
      return nullptr;
    }
  }
  return &d->base;
}

LCE_NATIVE_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  delete static_cast<Delegate*>(delegate->data_);
}

LCE_NATIVE_EXPORT int lce_native_claimed(TfLiteDelegate* delegate) {
  return static_cast<Delegate*>(delegate->data_)->claimed;
}

LCE_NATIVE_EXPORT int lce_native_fused(TfLiteDelegate* delegate) {
  return static_cast<Delegate*>(delegate->data_)->fused;
}

LCE_NATIVE_EXPORT const char* lce_native_error(TfLiteDelegate* delegate) {
  return static_cast<Delegate*>(delegate->data_)->error.c_str();
}

// With LARQ_BNAS_NATIVE_PROFILE set: "kind calls seconds" lines since the delegate's start.
LCE_NATIVE_EXPORT const char* lce_native_profile(TfLiteDelegate* delegate) {
  auto* d = static_cast<Delegate*>(delegate->data_);
  d->report.clear();
  for (int i = 0; i < 4; ++i)
    d->report += std::string(KindName(static_cast<Kind>(i))) + " " + std::to_string(d->calls[i]) +
                 " " + std::to_string(d->seconds[i]) + "\n";
  return d->report.c_str();
}

// The instruction set this delegate's kernels use.
LCE_NATIVE_EXPORT const char* lce_native_isa(TfLiteDelegate* delegate) {
  return IsaName(static_cast<Delegate*>(delegate->data_)->isa);
}

// The instruction sets this CPU can run, best first ("avx512 avx2 scalar").
LCE_NATIVE_EXPORT const char* lce_native_cpu_isas() {
  static std::string isas;
  if (isas.empty()) {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar})
      if (CpuHas(isa)) isas += std::string(isas.empty() ? "" : " ") + IsaName(isa);
  }
  return isas.c_str();
}

// The best instruction set of this CPU (kept for older callers).
LCE_NATIVE_EXPORT const char* lce_native_features() { return IsaName(BestIsa()); }

// The tensor `index` as the delegate sees it through the declared structs, as
// "name\ttype\tdim,dim,...\tbytes"; the count of tensors for index -1; "" if out of range.
LCE_NATIVE_EXPORT const char* lce_native_tensor_info(TfLiteDelegate* delegate, int index) {
  auto* d = static_cast<Delegate*>(delegate->data_);
  d->info.clear();
  const TfLiteContext* c = d->context;
  if (c == nullptr) return d->info.c_str();
  if (index < 0) {
    d->info = std::to_string(c->tensors_size);
    return d->info.c_str();
  }
  if (static_cast<size_t>(index) >= c->tensors_size) return d->info.c_str();
  const TfLiteTensor& t = c->tensors[index];
  d->info = t.name ? t.name : "";
  d->info += "\t" + std::to_string(static_cast<int>(t.type)) + "\t";
  if (t.dims != nullptr && t.dims->size >= 0 && t.dims->size <= 16)
    for (int i = 0; i < t.dims->size; ++i)
      d->info += (i ? "," : "") + std::to_string(t.dims->data[i]);
  d->info += "\t" + std::to_string(t.bytes);
  return d->info.c_str();
}

}  // extern "C"
