// Native kernels for Larq Compute Engine's custom ops, as a TensorFlow Lite delegate.
//
// LCE's Python wheel has hand-written binary kernels for ARM only; on x86 its bconv is
// portable scalar C++. This library is compiled on the machine that runs it
// (-O3 -march=native, see native.py), claims the LCE nodes of a flatbuffer
// (LceQuantize, LceDequantize, LceBconv2d, LceBMaxPool2d) in TensorFlow Lite's own
// interpreter, and runs them with vector popcounts (AVX-512 VPOPCNTDQ where the CPU has
// it) on a small thread pool. The float ops stay with TensorFlow Lite (and its XNNPACK
// delegate). Semantics follow LCE: bit 1 is -1; a bconv's dot product is
// K - 2 * popcount(x ^ w) with one-padding counted as +1 inputs, zero padding corrected
// per border pixel; float output = clamp(dot) * multiplier + bias; bitpacked output bit =
// popcount > threshold.
//
// Exported (C): tflite_plugin_create_delegate, tflite_plugin_destroy_delegate,
// lce_native_claimed, lce_native_error, lce_native_features.

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
#include <immintrin.h>
#define LCE_NATIVE_AVX512 1
#else
#define LCE_NATIVE_AVX512 0
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LCE_NATIVE_PAUSE() _mm_pause()
#else
#define LCE_NATIVE_PAUSE() std::this_thread::yield()
#endif

#include "tflite_abi.h"

#define LCE_NATIVE_EXPORT __attribute__((visibility("default")))

namespace {

// ---------------------------------------------------------------------------------------
// Custom options: LCE writes a flexbuffer map of numbers.

uint64_t ReadUInt(const uint8_t* p, int width) {
  switch (width) {
    case 1: return p[0];
    case 2: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    default: { uint64_t v; std::memcpy(&v, p, 8); return v; }
  }
}

int64_t ReadInt(const uint8_t* p, int width) {
  switch (width) {
    case 1: return static_cast<int8_t>(p[0]);
    case 2: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { int32_t v; std::memcpy(&v, p, 4); return v; }
    default: { int64_t v; std::memcpy(&v, p, 8); return v; }
  }
}

double ReadFloat(const uint8_t* p, int width) {
  if (width == 4) { float v; std::memcpy(&v, p, 4); return v; }
  double v; std::memcpy(&v, p, 8); return v;
}

// Look up `key` in the flexbuffer map `buf`; false if absent or not a number.
bool FlexNumber(const uint8_t* buf, size_t len, const char* key, double* out) {
  if (buf == nullptr || len < 3) return false;
  const int root_width = buf[len - 1];
  const uint8_t root_type = buf[len - 2];
  if (root_width > 8 || len < static_cast<size_t>(2 + root_width)) return false;
  if ((root_type >> 2) != 9) return false;  // FBT_MAP
  const uint8_t* root = buf + len - 2 - root_width;
  const uint8_t* data = root - ReadUInt(root, root_width);
  const int w = 1 << (root_type & 3);
  if (data < buf + 3 * w || data > buf + len) return false;
  const uint64_t size = ReadUInt(data - w, w);
  const uint8_t* keys_ref = data - 3 * w;
  const uint8_t* keys = keys_ref - ReadUInt(keys_ref, w);
  const int key_width = static_cast<int>(ReadUInt(data - 2 * w, w));
  const uint8_t* types = data + size * w;
  if (types + size > buf + len || keys < buf) return false;
  for (uint64_t i = 0; i < size; ++i) {
    const uint8_t* key_ref = keys + i * key_width;
    const char* name = reinterpret_cast<const char*>(key_ref - ReadUInt(key_ref, key_width));
    if (std::strcmp(name, key) != 0) continue;
    const uint8_t* value = data + i * w;
    const int type = types[i] >> 2, child_width = 1 << (types[i] & 3);
    switch (type) {
      case 1: *out = static_cast<double>(ReadInt(value, w)); return true;       // INT
      case 2: case 26: *out = static_cast<double>(ReadUInt(value, w)); return true;  // UINT, BOOL
      case 3: *out = ReadFloat(value, w); return true;                           // FLOAT
      case 6: *out = static_cast<double>(ReadInt(value - ReadUInt(value, w), child_width));
        return true;                                                             // INDIRECT_INT
      case 7: *out = static_cast<double>(ReadUInt(value - ReadUInt(value, w), child_width));
        return true;                                                             // INDIRECT_UINT
      case 8: *out = ReadFloat(value - ReadUInt(value, w), child_width); return true;
      default: return false;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// A fork-join pool: run(n, fn) calls fn(0..n-1) on the caller and the workers.

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
      pending_.store(static_cast<int>(workers_.size()));
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    Drain();
    while (pending_.load(std::memory_order_acquire) != 0) LCE_NATIVE_PAUSE();
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
      }
      Drain();
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* job_ = nullptr;
  int tasks_ = 0;
  int spin_ = 2000;
  double min_work_ = 2e4;
  bool stop_ = false;
};

// ---------------------------------------------------------------------------------------
// Kernels.

enum class Kind { kQuantize, kDequantize, kBconv, kBMaxPool };

struct Delegate;

constexpr int kLanes = 16;  // output channels per vector block

// A float element-wise op fused into a kernel: before a LceQuantize (the BatchNorm in
// front of a sign) or after a float-output LceBconv2d (ReLU, then a BatchNorm).
struct Elementwise {
  enum Op { kRelu, kMul, kAdd } op;
  std::vector<float> values;  // per channel, padded to whole 32-channel words (kRelu: none)
};

struct Kernel {
  Kind kind;
  Delegate* owner = nullptr;
  int input = -1, output = -1;
  // LceBconv2d
  int filter = -1, multiplier = -1, bias = -1, threshold = -1;
  int channels_in = 0, dilation_h = 1, dilation_w = 1, stride_h = 1, stride_w = 1;
  int activation = 0, pad_values = 0, padding = 0;  // padding: 0 SAME, 1 VALID
  int groups = 1, cin_group = 0, words = 0, cout = 0, cout_group = 0, kh = 1, kw = 1;
  int blocks = 0;  // vector blocks per group
  int clamp_min = 0, clamp_max = 0;
  std::vector<uint32_t> packed;   // [group][block][kpos][word][lane]
  std::vector<int32_t> wsum;      // [group][block][kpos][lane]: sum of +-1 weights
  std::vector<float> mult, add;   // per output channel, padded to whole blocks
  std::vector<int32_t> thresh;    // likewise
  std::vector<uint32_t> zeros;    // one-padding input: +1 everywhere = bits 0
  // LceBMaxPool2d
  int filter_h = 1, filter_w = 1;
  // fused float ops: `pre` before a LceQuantize, `post` after a float LceBconv2d
  std::vector<Elementwise> pre, post;
  std::vector<int> fused_nodes;  // the builtin nodes folded into this kernel
  int channels = 0;              // channels of the float tensor the fused ops act on
};

struct Delegate {
  TfLiteDelegate base;
  int threads = 1;
  Pool* pool = nullptr;
  int claimed = 0;   // LCE nodes run here
  int fused = 0;     // float nodes folded into them
  bool fuse = true;  // option "fuse": fold neighbouring float element-wise ops
  std::vector<int> protect;  // option "protect": tensors read outside the graph (outputs)
  std::string error;
  bool profile = std::getenv("LARQ_BNAS_NATIVE_PROFILE") != nullptr;
  double seconds[4] = {0, 0, 0, 0};  // per Kind, with `profile`
  int64_t calls[4] = {0, 0, 0, 0};
  std::string report;
  ~Delegate() { delete pool; }
};

inline const TfLiteIntArray* Dims(TfLiteContext* c, int t) { return c->tensors[t].dims; }
inline int Dim(TfLiteContext* c, int t, int i) {
  const TfLiteIntArray* d = Dims(c, t);
  return d->data[i < 0 ? d->size + i : i];
}
inline int64_t Elements(TfLiteContext* c, int t) {
  const TfLiteIntArray* d = Dims(c, t);
  int64_t n = 1;
  for (int i = 0; i < d->size; ++i) n *= d->data[i];
  return n;
}
inline int Words(int channels) { return (channels + 31) / 32; }

int Option(const TfLiteNode* node, const char* key, int fallback) {
  double value;
  if (FlexNumber(static_cast<const uint8_t*>(node->custom_initial_data),
                 static_cast<size_t>(node->custom_initial_data_size), key, &value))
    return static_cast<int>(value);
  return fallback;
}

// SAME padding's leading pad (TensorFlow's rule).
int LeadingPad(int in, int out, int k, int stride, int dilation, int padding) {
  if (padding != 0) return 0;
  const int total = (out - 1) * stride + (k - 1) * dilation + 1 - in;
  return total > 0 ? total / 2 : 0;
}

void PrepareBconv(TfLiteContext* c, Kernel* k) {
  const int f = k->filter;
  k->cout = Dim(c, f, 0);
  k->kh = Dim(c, f, 1);
  k->kw = Dim(c, f, 2);
  k->words = Dim(c, f, 3);
  if (k->words == Words(k->channels_in)) {
    k->groups = 1;
    k->cin_group = k->channels_in;
  } else {
    k->cin_group = 32 * k->words;
    k->groups = std::max(1, k->channels_in / k->cin_group);
  }
  k->cout_group = k->cout / k->groups;
  k->blocks = (k->cout_group + kLanes - 1) / kLanes;
  const int kpos = k->kh * k->kw, W = k->words, G = k->groups, B = k->blocks;
  const uint32_t* src = static_cast<const uint32_t*>(c->tensors[f].data);
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
      if (k->multiplier >= 0) k->mult[dst] = static_cast<const float*>(c->tensors[k->multiplier].data)[oc];
      if (k->bias >= 0) k->add[dst] = static_cast<const float*>(c->tensors[k->bias].data)[oc];
      if (k->threshold >= 0) k->thresh[dst] = static_cast<const int32_t*>(c->tensors[k->threshold].data)[oc];
    }
  k->zeros.assign(static_cast<size_t>(Dim(c, k->input, -1)) + kLanes, 0u);
  // Fused activation (TFLite's enum): NONE, RELU, RELU_N1_TO_1, RELU6.
  k->clamp_min = -(1 << 30);
  k->clamp_max = 1 << 30;
  if (k->activation == 1) k->clamp_min = 0;
  if (k->activation == 2) { k->clamp_min = -1; k->clamp_max = 1; }
  if (k->activation == 3) { k->clamp_min = 0; k->clamp_max = 6; }
}

// One tile of T output pixels (same row, consecutive columns) for one group.
// rows[t][p] points at the `words` input words of kernel position p for pixel t.
template <int T>
void BconvTile(const Kernel& k, int g, const uint32_t* const* rows, const bool* padded_any,
               const bool* padded, float* out_float, uint32_t* out_bits, int64_t pixel0) {
  const int kpos = k.kh * k.kw, W = k.words, B = k.blocks;
  const int ktotal = kpos * k.cin_group;
  const bool float_out = out_float != nullptr;
  for (int b = 0; b < B; ++b) {
    const int co0 = b * kLanes, lanes = std::min(kLanes, k.cout_group - co0);
    const uint32_t* F = k.packed.data() + (static_cast<size_t>(g) * B + b) * kpos * W * kLanes;
    const size_t chan = static_cast<size_t>(g) * B * kLanes + co0;  // index into mult/add
    const int oc0 = g * k.cout_group + co0;                          // output channel
#if LCE_NATIVE_AVX512
    __m512i acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_si512();
    for (int p = 0; p < kpos; ++p) {
      const uint32_t* Fp = F + static_cast<size_t>(p) * W * kLanes;
      for (int w = 0; w < W; ++w) {
        const __m512i fw = _mm512_loadu_si512(Fp + w * kLanes);
        for (int t = 0; t < T; ++t) {
          const __m512i x = _mm512_set1_epi32(static_cast<int>(rows[t * kpos + p][w]));
          acc[t] = _mm512_add_epi32(acc[t], _mm512_popcnt_epi32(_mm512_xor_si512(x, fw)));
        }
      }
    }
    const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1u);
    for (int t = 0; t < T; ++t) {
      const int64_t pixel = pixel0 + t;
      if (float_out) {
        __m512i dot = _mm512_sub_epi32(_mm512_set1_epi32(ktotal), _mm512_slli_epi32(acc[t], 1));
        if (padded_any[t]) {
          const int32_t* S = k.wsum.data() + (static_cast<size_t>(g) * B + b) * kpos * kLanes;
          for (int p = 0; p < kpos; ++p)
            if (padded[t * kpos + p])
              dot = _mm512_sub_epi32(dot, _mm512_loadu_si512(S + p * kLanes));
        }
        dot = _mm512_max_epi32(dot, _mm512_set1_epi32(k.clamp_min));
        dot = _mm512_min_epi32(dot, _mm512_set1_epi32(k.clamp_max));
        __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(k.mult.data() + chan),
                                   _mm512_loadu_ps(k.add.data() + chan));
        for (const Elementwise& e : k.post) {
          if (e.op == Elementwise::kRelu) y = _mm512_max_ps(y, _mm512_setzero_ps());
          else if (e.op == Elementwise::kMul) y = _mm512_mul_ps(y, _mm512_loadu_ps(e.values.data() + oc0));
          else y = _mm512_add_ps(y, _mm512_loadu_ps(e.values.data() + oc0));
        }
        _mm512_mask_storeu_ps(out_float + pixel * k.cout + oc0, mask, y);
      } else {
        const __mmask16 bits = _mm512_mask_cmpgt_epi32_mask(
            mask, acc[t], _mm512_loadu_si512(k.thresh.data() + chan));
        const uint64_t shifted = static_cast<uint64_t>(bits) << (oc0 & 31);
        uint32_t* word = out_bits + pixel * Words(k.cout) + (oc0 >> 5);
        word[0] |= static_cast<uint32_t>(shifted);
        if (shifted >> 32) word[1] |= static_cast<uint32_t>(shifted >> 32);
      }
    }
#else
    int32_t acc[T][kLanes] = {};
    for (int p = 0; p < kpos; ++p) {
      const uint32_t* Fp = F + static_cast<size_t>(p) * W * kLanes;
      for (int w = 0; w < W; ++w)
        for (int t = 0; t < T; ++t) {
          const uint32_t x = rows[t * kpos + p][w];
          for (int l = 0; l < kLanes; ++l) acc[t][l] += __builtin_popcount(x ^ Fp[w * kLanes + l]);
        }
    }
    for (int t = 0; t < T; ++t) {
      const int64_t pixel = pixel0 + t;
      for (int l = 0; l < lanes; ++l) {
        if (float_out) {
          int32_t dot = ktotal - 2 * acc[t][l];
          if (padded_any[t]) {
            const int32_t* S = k.wsum.data() + (static_cast<size_t>(g) * B + b) * kpos * kLanes;
            for (int p = 0; p < kpos; ++p)
              if (padded[t * kpos + p]) dot -= S[p * kLanes + l];
          }
          dot = std::min(std::max(dot, k.clamp_min), k.clamp_max);
          float y = std::fma(static_cast<float>(dot), k.mult[chan + l], k.add[chan + l]);
          for (const Elementwise& e : k.post) {
            if (e.op == Elementwise::kRelu) y = std::max(y, 0.0f);
            else if (e.op == Elementwise::kMul) y *= e.values[oc0 + l];
            else y += e.values[oc0 + l];
          }
          out_float[pixel * k.cout + oc0 + l] = y;
        } else if (acc[t][l] > k.thresh[chan + l]) {
          const int oc = oc0 + l;
          out_bits[pixel * Words(k.cout) + (oc >> 5)] |= 1u << (oc & 31);
        }
      }
    }
#endif
  }
}

constexpr int kTile = 8;

void RunBconv(TfLiteContext* c, const Kernel& k, Pool* pool) {
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
  pool->Run(N * Ho, [&](int row) {
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
              rows[p] = inside ? in + ((static_cast<int64_t>(n) * H + ih) * Wd + iw) * in_words +
                                     g * k.words
                               : k.zeros.data();
              padded[p] = !inside && zero_pad;
              padded_any[t] |= padded[p] != 0;
            }
        }
        const int64_t pixel0 = (static_cast<int64_t>(n) * Ho + oh) * Wo + ow0;
        const bool* pad = reinterpret_cast<const bool*>(padded.data());
        int t = 0;
        while (t < count) {
          const int left = count - t;
          const uint32_t* const* r = rows.data() + t * kpos;
          const bool* pd = pad + t * kpos;
          if (left >= 8) { BconvTile<8>(k, g, r, padded_any + t, pd, out_float, out_bits, pixel0 + t); t += 8; }
          else if (left >= 4) { BconvTile<4>(k, g, r, padded_any + t, pd, out_float, out_bits, pixel0 + t); t += 4; }
          else if (left >= 2) { BconvTile<2>(k, g, r, padded_any + t, pd, out_float, out_bits, pixel0 + t); t += 2; }
          else { BconvTile<1>(k, g, r, padded_any + t, pd, out_float, out_bits, pixel0 + t); t += 1; }
        }
      }
    }
  }, work);
}

// per_pixel(px) for px in [0, pixels), in chunks of about 4096 channel values per task.
template <typename F>
void ForEachPixel(Pool* pool, int64_t pixels, int channels, double work, const F& per_pixel) {
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max(1, channels));
  const int tasks = static_cast<int>((pixels + chunk - 1) / chunk);
  pool->Run(tasks, [&](int task) {
    const int64_t end = std::min(pixels, (task + 1) * chunk);
    for (int64_t px = task * chunk; px < end; ++px) per_pixel(px);
  }, work);
}

void RunQuantize(TfLiteContext* c, const Kernel& k, Pool* pool) {
  const int C = Dim(c, k.input, -1), OW = Dim(c, k.output, -1);
  const int64_t pixels = Elements(c, k.input) / C;
  const float* in = static_cast<const float*>(c->tensors[k.input].data);
  uint32_t* out = static_cast<uint32_t*>(c->tensors[k.output].data);
  ForEachPixel(pool, pixels, C, static_cast<double>(pixels) * OW * 4, [&](int64_t px) {
      const float* x = in + px * C;
      uint32_t* o = out + px * OW;
      for (int w = 0; w < OW; ++w) {
        const int base = w * 32;
#if LCE_NATIVE_AVX512
        const __m512 zero = _mm512_setzero_ps();
        uint32_t bits = 0;
        for (int half = 0; half < 2; ++half) {
          const int from = base + 16 * half, count = std::min(16, C - from);
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
#else
        uint32_t bits = 0;
        for (int i = 0, n = std::min(32, C - base); i < n; ++i) {
          float v = x[base + i];
          for (const Elementwise& e : k.pre)
            v = e.op == Elementwise::kMul ? v * e.values[base + i] : v + e.values[base + i];
          bits |= static_cast<uint32_t>(v < 0.0f) << i;
        }
        o[w] = bits;
#endif
      }
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
  pool->Run(N * Ho, [&](int row) {
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
  }, static_cast<double>(N) * Ho * Wo * words * k.filter_h * k.filter_w);
}

// ---------------------------------------------------------------------------------------
// The TFLite kernel of a delegated node (one LCE node each).

enum { kBuiltinAdd = 0, kBuiltinMul = 18, kBuiltinRelu = 19 };
enum { kTfLiteMmapRo = 1 };

// If `node` is a float RELU, or a MUL / ADD of the tensor `x` and a constant (a scalar or
// one value per channel), without a fused activation and with the shape of `x`, fill `e`
// (values padded for vector loads) and return true.
bool ReadElementwise(TfLiteContext* c, const TfLiteNode* node, const TfLiteRegistration* reg,
                     int x, Elementwise* e) {
  if (node->outputs->size != 1) return false;
  const TfLiteTensor& in = c->tensors[x];
  const TfLiteTensor& out = c->tensors[node->outputs->data[0]];
  if (in.type != kTfLiteFloat32 || out.type != kTfLiteFloat32) return false;
  if (in.dims->size != out.dims->size) return false;
  for (int i = 0; i < in.dims->size; ++i)
    if (in.dims->data[i] != out.dims->data[i]) return false;
  const int C = in.dims->size ? in.dims->data[in.dims->size - 1] : 1;
  const size_t padded = static_cast<size_t>(Words(C)) * 32 + 2 * kLanes;
  if (reg->builtin_code == kBuiltinRelu) {
    if (node->inputs->size != 1 || node->inputs->data[0] != x) return false;
    e->op = Elementwise::kRelu;
    e->values.clear();
    return true;
  }
  if (reg->builtin_code != kBuiltinAdd && reg->builtin_code != kBuiltinMul) return false;
  if (node->inputs->size != 2) return false;
  if (node->builtin_data != nullptr && *static_cast<const int*>(node->builtin_data) != 0)
    return false;  // a fused activation
  const int a = node->inputs->data[0], b = node->inputs->data[1];
  if (a != x && b != x) return false;
  const int k = a == x ? b : a;
  if (k < 0 || k == x) return false;
  const TfLiteTensor& constant = c->tensors[k];
  if (constant.allocation_type != kTfLiteMmapRo || constant.data == nullptr ||
      constant.type != kTfLiteFloat32)
    return false;
  const int64_t n = Elements(c, k);
  const int last = constant.dims->size ? constant.dims->data[constant.dims->size - 1] : 1;
  if (!(n == 1 || (n == C && last == C))) return false;
  const float* v = static_cast<const float*>(constant.data);
  e->op = reg->builtin_code == kBuiltinMul ? Elementwise::kMul : Elementwise::kAdd;
  e->values.assign(padded, e->op == Elementwise::kMul ? 1.0f : 0.0f);
  for (int i = 0; i < C; ++i) e->values[i] = n == 1 ? v[0] : v[i];
  return true;
}

void* KernelInit(TfLiteContext* c, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* owner = static_cast<Delegate*>(params->delegate->data_);
  const TfLiteIntArray* nodes = params->nodes_to_replace;
  // The subset is [float ops] LceX [float ops], in execution order.
  int lce = -1;
  for (int i = 0; i < nodes->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* reg;
    if (c->GetNodeAndRegistration(c, nodes->data[i], &node, &reg) != kTfLiteOk) return nullptr;
    if (reg->builtin_code == kTfLiteBuiltinCustom) {
      if (lce >= 0) return nullptr;
      lce = i;
    }
  }
  if (lce < 0) return nullptr;
  TfLiteNode* node = nullptr;
  TfLiteRegistration* reg = nullptr;
  c->GetNodeAndRegistration(c, nodes->data[lce], &node, &reg);
  auto* k = new Kernel();
  k->owner = owner;
  const std::string name = reg->custom_name ? reg->custom_name : "";
  k->kind = name == "LceBconv2d"   ? Kind::kBconv
            : name == "LceQuantize" ? Kind::kQuantize
            : name == "LceDequantize" ? Kind::kDequantize
                                      : Kind::kBMaxPool;
  const TfLiteIntArray* in = node->inputs;
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
    TfLiteNode* n;
    TfLiteRegistration* r;
    c->GetNodeAndRegistration(c, nodes->data[i], &n, &r);
    if (n->outputs->data[0] != k->input) { delete k; return nullptr; }
    Elementwise e;
    int x = -1;
    for (int j = 0; j < n->inputs->size && x < 0; ++j) {
      const int t = n->inputs->data[j];
      if (t >= 0 && c->tensors[t].allocation_type != kTfLiteMmapRo) x = t;
    }
    if (x < 0 || !ReadElementwise(c, n, r, x, &e)) { delete k; return nullptr; }
    k->pre.insert(k->pre.begin(), e);
    k->input = x;
  }
  for (int i = lce + 1; i < nodes->size; ++i) {
    TfLiteNode* n;
    TfLiteRegistration* r;
    c->GetNodeAndRegistration(c, nodes->data[i], &n, &r);
    Elementwise e;
    if (!ReadElementwise(c, n, r, k->output, &e)) { delete k; return nullptr; }
    k->post.push_back(e);
    k->output = n->outputs->data[0];
  }
  return k;
}

void KernelFree(TfLiteContext*, void* buffer) { delete static_cast<Kernel*>(buffer); }

TfLiteStatus KernelPrepare(TfLiteContext* c, TfLiteNode* node) {
  auto* k = static_cast<Kernel*>(node->user_data);
  if (k == nullptr) return kTfLiteError;
  if (k->kind == Kind::kBconv) {
    if (c->tensors[k->filter].data == nullptr) {
      c->ReportError(c, "lce_native: the filter of a LceBconv2d is not a constant");
      return kTfLiteError;
    }
    PrepareBconv(c, k);
  }
  return kTfLiteOk;
}

TfLiteStatus KernelInvoke(TfLiteContext* c, TfLiteNode* node) {
  const auto* k = static_cast<const Kernel*>(node->user_data);
  Delegate* d = k->owner;
  const auto start = d->profile ? std::chrono::steady_clock::now()
                                : std::chrono::steady_clock::time_point();
  switch (k->kind) {
    case Kind::kBconv: RunBconv(c, *k, d->pool); break;
    case Kind::kQuantize: RunQuantize(c, *k, d->pool); break;
    case Kind::kDequantize: RunDequantize(c, *k, d->pool); break;
    case Kind::kBMaxPool: RunBMaxPool(c, *k, d->pool); break;
  }
  if (d->profile) {
    const int i = static_cast<int>(k->kind);
    d->seconds[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    d->calls[i] += 1;
  }
  return kTfLiteOk;
}

// Which LCE nodes this library runs (float32 or bitpacked int32 tensors; no int8).
bool Supported(TfLiteContext* c, const TfLiteNode* node, const std::string& name) {
  auto type = [&](int i, bool input) {
    const TfLiteIntArray* a = input ? node->inputs : node->outputs;
    return i < a->size && a->data[i] >= 0 ? c->tensors[a->data[i]].type : kTfLiteNoType;
  };
  if (name == "LceQuantize") return type(0, true) == kTfLiteFloat32 && type(0, false) == kTfLiteInt32;
  if (name == "LceDequantize") return type(0, true) == kTfLiteInt32 && type(0, false) == kTfLiteFloat32;
  if (name == "LceBMaxPool2d") return type(0, true) == kTfLiteInt32 && type(0, false) == kTfLiteInt32;
  if (name == "LceBconv2d") {
    if (type(0, true) != kTfLiteInt32 || type(1, true) != kTfLiteInt32) return false;
    if (Dims(c, node->inputs->data[0])->size != 4 || Dims(c, node->inputs->data[1])->size != 4)
      return false;
    const TfLiteType out = type(0, false);
    if (out == kTfLiteFloat32) return true;
    // Bitpacked output: LCE emits it with one-padding (or none) only.
    return out == kTfLiteInt32 && Option(node, "pad_values", 0) == 1 &&
           node->inputs->size > 4 && node->inputs->data[4] >= 0;
  }
  return false;
}

TfLiteStatus DelegatePrepare(TfLiteContext* c, TfLiteDelegate* base) {
  auto* d = static_cast<Delegate*>(base->data_);
  int threads = d->threads > 0 ? d->threads : c->recommended_num_threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (d->pool == nullptr || d->pool->size() != threads) {
    delete d->pool;
    d->pool = new Pool(threads);
  }
  TfLiteIntArray* plan = nullptr;
  if (c->GetExecutionPlan(c, &plan) != kTfLiteOk) return kTfLiteError;
  const int count = plan->size;
  std::vector<TfLiteNode*> nodes(count);
  std::vector<TfLiteRegistration*> regs(count);
  // Who reads each tensor (model outputs count as readers), who writes it.
  std::vector<int> readers(c->tensors_size, 0), reader(c->tensors_size, -1),
      writer(c->tensors_size, -1);
  for (int t : d->protect)
    if (t >= 0 && static_cast<size_t>(t) < c->tensors_size) readers[t] += 2;
  for (int i = 0; i < count; ++i) {
    if (c->GetNodeAndRegistration(c, plan->data[i], &nodes[i], &regs[i]) != kTfLiteOk)
      return kTfLiteError;
    for (int j = 0; j < nodes[i]->inputs->size; ++j) {
      const int t = nodes[i]->inputs->data[j];
      if (t >= 0) { readers[t] += 1; reader[t] = i; }
    }
    for (int j = 0; j < nodes[i]->outputs->size; ++j) {
      const int t = nodes[i]->outputs->data[j];
      if (t >= 0) writer[t] = i;
    }
  }
  std::vector<char> taken(count, 0);
  std::vector<std::vector<int>> groups;  // plan positions, in order
  std::vector<int> lce_positions;
  for (int i = 0; i < count; ++i) {
    if (regs[i]->builtin_code != kTfLiteBuiltinCustom || regs[i]->custom_name == nullptr) continue;
    const std::string name = regs[i]->custom_name;
    if (name.rfind("Lce", 0) != 0) continue;
    if (Supported(c, nodes[i], name)) {
      lce_positions.push_back(i);
    } else if (d->error.empty()) {
      d->error = "node " + std::to_string(plan->data[i]) + " (" + name +
                 ") has tensor types these kernels do not run (int8?)";
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
    for (int step = 0; step < 3; ++step) {
      const int w = writer[t];
      if (w < 0 || w != chains[i].front() - 1 || readers[t] != 1) break;
      int x = -1;
      for (int j = 0; j < nodes[w]->inputs->size && x < 0; ++j) {
        const int u = nodes[w]->inputs->data[j];
        if (u >= 0 && c->tensors[u].allocation_type != kTfLiteMmapRo) x = u;
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
    if (c->tensors[t].type != kTfLiteFloat32) continue;
    for (int step = 0; step < 3; ++step) {
      const int r = reader[t];
      if (readers[t] != 1 || r != chains[i].back() + 1 || !fusable(r, t)) break;
      taken[r] = 1;
      chains[i].push_back(r);
      t = nodes[r]->outputs->data[0];
    }
  }
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

LCE_NATIVE_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  auto* d = new Delegate();
  std::memset(&d->base, 0, sizeof d->base);
  d->base.data_ = d;
  d->base.Prepare = DelegatePrepare;
  d->base.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  for (size_t i = 0; i < count; ++i) {
    if (std::strcmp(keys[i], "num_threads") == 0) {
      d->threads = std::atoi(values[i]);
    } else if (std::strcmp(keys[i], "fuse") == 0) {
      d->fuse = std::atoi(values[i]) != 0;
    } else if (std::strcmp(keys[i], "protect") == 0) {
      for (const char* p = values[i]; *p;) {
        char* end;
        const long t = std::strtol(p, &end, 10);
        if (end == p) break;
        d->protect.push_back(static_cast<int>(t));
        p = *end == ',' ? end + 1 : end;
      }
    } else if (report_error != nullptr) {
      report_error((std::string("lce_native: unknown option ") + keys[i]).c_str());
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
  static const char* names[4] = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"};
  d->report.clear();
  for (int i = 0; i < 4; ++i)
    d->report += std::string(names[i]) + " " + std::to_string(d->calls[i]) + " " +
                 std::to_string(d->seconds[i]) + "\n";
  return d->report.c_str();
}

LCE_NATIVE_EXPORT const char* lce_native_features() { return LCE_NATIVE_AVX512 ? "avx512-vpopcntdq" : "portable"; }

}  // extern "C"
