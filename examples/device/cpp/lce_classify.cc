// lce_classify: run an LCE flatbuffer on a device with the TFLite C++ API.
//
// An OUTLINE, not compiled in this repository's CI: build it inside a checkout of
// larq/compute-engine (see README.md in this directory) so that Bazel finds TFLite and
// the LCE kernels.
//
//   lce_classify model.tflite [input.f32] [num_threads] [runs]
//
// input.f32 is the raw float32 input of the model (H*W*C values, already preprocessed,
// e.g. written with numpy's x.astype("float32").tofile("input.f32")); without it the
// input is all zeros. Prints the median latency and the five highest scores.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numeric>
#include <vector>

// Older LCE releases had this header under larq_compute_engine/tflite/cc/kernels/.
#include "larq_compute_engine/tflite/kernels/lce_ops_register.h"
#include "tensorflow/lite/interpreter.h"
#include "tensorflow/lite/kernels/register.h"
#include "tensorflow/lite/model.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "lce_classify: %s\n", what);
  std::exit(1);
}

// Copies the file's float32 values into the model's float input tensor.
void FillInput(tflite::Interpreter& interpreter, const char* path) {
  TfLiteTensor* input = interpreter.tensor(interpreter.inputs()[0]);
  if (input->type != kTfLiteFloat32) Fail("this outline feeds float32 inputs only");
  const size_t count = input->bytes / sizeof(float);
  float* data = interpreter.typed_input_tensor<float>(0);
  std::fill(data, data + count, 0.0f);
  if (path == nullptr) return;
  std::ifstream file(path, std::ios::binary);
  if (!file) Fail("cannot open the input file");
  file.read(reinterpret_cast<char*>(data), input->bytes);
  if (static_cast<size_t>(file.gcount()) != input->bytes) Fail("input file too short");
}

}  // namespace

int main(int argc, char* argv[]) {
  if (argc < 2) Fail("usage: lce_classify model.tflite [input.f32] [num_threads] [runs]");
  const char* input_path = argc > 2 ? argv[2] : nullptr;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 4;
  const int runs = argc > 4 ? std::atoi(argv[4]) : 20;

  auto model = tflite::FlatBufferModel::BuildFromFile(argv[1]);
  if (!model) Fail("cannot read the flatbuffer");

  // The builtin TFLite ops plus LCE's custom ops (LceQuantize, LceBconv2d,
  // LceBMaxPool2d, LceDequantize). Without this call the interpreter refuses the model.
  tflite::ops::builtin::BuiltinOpResolver resolver;
  compute_engine::tflite::RegisterLCECustomOps(&resolver);

  std::unique_ptr<tflite::Interpreter> interpreter;
  tflite::InterpreterBuilder(*model, resolver)(&interpreter);
  if (!interpreter) Fail("cannot build the interpreter");
  interpreter->SetNumThreads(threads);
  if (interpreter->AllocateTensors() != kTfLiteOk) Fail("AllocateTensors failed");

  FillInput(*interpreter, input_path);
  if (interpreter->Invoke() != kTfLiteOk) Fail("Invoke failed");  // warm-up

  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    interpreter->Invoke();
    const auto stop = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("median latency %.2f ms over %d runs, %d threads\n", ms[ms.size() / 2], runs,
              threads);

  const TfLiteTensor* output = interpreter->tensor(interpreter->outputs()[0]);
  if (output->type != kTfLiteFloat32) return 0;  // int8 output: dequantize yourself
  const float* scores = interpreter->typed_output_tensor<float>(0);
  const int classes = static_cast<int>(output->bytes / sizeof(float));
  std::vector<int> order(classes);
  std::iota(order.begin(), order.end(), 0);
  const int top = std::min(5, classes);
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int a, int b) { return scores[a] > scores[b]; });
  for (int i = 0; i < top; ++i) {
    std::printf("%d. class %d  %.4f\n", i + 1, order[i], scores[order[i]]);
  }
  return 0;
}
