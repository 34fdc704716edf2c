"""TFLM inference against LiteRT on the same int8 files, the arena search, and the firmware
sources generated from them."""

import inspect
import re
import shutil
import subprocess

import numpy as np
import pytest

from bap_tf.export import firmware, micro, micro_probe
from bap_tf.export.child import WorkerError
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.micro import MicroModel, arena_runs, find_arena_bytes
from bap_tf.export.quantization import dequantize, tensor_quantization


def test_tflm_agrees_with_litert_on_int8_outputs(micro_files, eval_sets):
    for domain, path in micro_files.items():
        images = eval_sets[domain][0]
        micro, litert = MicroModel(path), LiteRTModel(path)
        tflm_raw, litert_raw = micro.raw_outputs(images), litert.raw_outputs(images)
        assert tflm_raw.dtype == np.int8
        assert tflm_raw.shape == litert_raw.shape == (len(images), 5 if domain == "birds" else 3)
        agreement = np.mean(np.argmax(tflm_raw, -1) == np.argmax(litert_raw, -1))
        steps = np.abs(tflm_raw.astype(int) - litert_raw.astype(int)).max()
        assert agreement >= 0.99, (domain, agreement)
        # Reference (TFLM) and optimized (LiteRT) kernels round differently now and then; the
        # differences add up over layers to a step or two (2 measured on these models).
        assert steps <= 3, (domain, steps)
        scale, zero_point = tensor_quantization(micro.output_details)
        np.testing.assert_array_equal(micro.logits(images), dequantize(tflm_raw, scale, zero_point))


def test_arena_search_finds_the_smallest_running_arena(micro_files, eval_sets):
    path = micro_files["cars"]
    found = find_arena_bytes(path, step=256)
    arena = found["arena_bytes"]
    assert arena % 256 == 0 and found["step"] == 256
    # TFLM's own report is a lower bound, not a size that works.
    assert 0 < found["reported_bytes"] <= arena
    assert arena_runs(path, arena)
    assert not arena_runs(path, arena - 256)
    logits = MicroModel(path, arena_bytes=arena).logits(eval_sets["cars"][0][:8])
    assert logits.shape == (8, 3) and np.all(np.isfinite(logits))


def test_find_arena_bytes_rejects_a_file_tflm_cannot_run():
    with pytest.raises(RuntimeError, match="TFLM cannot run this model"):
        find_arena_bytes(b"this is not a flatbuffer", ceiling=64 * 1024)


def test_a_failed_or_late_arena_probe_raises_with_its_stderr(tmp_path):
    with pytest.raises(WorkerError, match=r"(?s)The TFLM arena probe of 1024 bytes failed: the child "
                       r"process exited with code 1\..*No such file"):
        arena_runs(tmp_path / "missing.tflite", 1024)
    with pytest.raises(WorkerError, match=r"The TFLM arena probe of 1024 bytes did not finish within "
                       r"0.01 s.*Received: timeout_s=0.01"):
        arena_runs(tmp_path / "missing.tflite", 1024, timeout_s=0.01)


def test_arena_too_small_is_the_probe_s_one_constant():
    # The caller reads the code the probe exits with: a copy of its own could drift.
    assert micro.ARENA_TOO_SMALL == micro_probe.ARENA_TOO_SMALL
    assert "ARENA_TOO_SMALL =" not in inspect.getsource(micro)


def test_micro_model_rejects_images_of_the_wrong_shape(micro_files):
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\).*Received: shape=\(2, 8, 8, 3\)"):
        MicroModel(micro_files["birds"]).raw_outputs(np.zeros((2, 8, 8, 3), np.float32))


# -- Firmware sources (bap_tf.export.firmware), here to reuse this file's int8 conversions. ------

# The part of TFLM's MicroMutableOpResolver the generated header uses, with a count check in place
# of the registrations: Add* fails once N ops are in, as TFLM's does ("resolver size is too small").
_RESOLVER_STUB = """
#ifndef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#include <cstdio>
#include <cstdlib>
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int registered = 0;
%s
 private:
  int Register(const char* name) {
    if (registered >= tOpCount) { std::fprintf(stderr, "too small for %%s\\n", name); std::abort(); }
    std::printf("%%s\\n", name);
    return ++registered;
  }
};
}  // namespace tflite
#endif
"""

_FIRMWARE_MAIN = """
#include <cstdio>
#include "%(stem)s_model_data.h"
#include "%(stem)s_op_resolver.h"
int main(int argc, char** argv) {
  if (argc > 1) {  // the model array, byte for byte
    std::fwrite(g_%(stem)s_model_data, 1, g_%(stem)s_model_data_size, stdout);
    return 0;
  }
  static auto resolver = %(camel)sOpResolver();
  std::printf("ops=%%u arena=%%zu\\n", resolver.registered, k%(camel)sArenaSize);
  return 0;
}
"""


def _model_ops(model_bytes):
    """Builtin op names of a .tflite read from its flatbuffer, apart from LiteRT's op list."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    return {
        names[max(model.operatorCodes[op.opcodeIndex].builtinCode,
                  model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
        for subgraph in model.subgraphs for op in subgraph.operators
    }


def _compiler():
    compiler = shutil.which("g++")
    assert compiler, "the firmware tests need g++: bash setup.sh test installs it"
    return compiler


def test_firmware_sources_compile_hold_the_model_and_register_its_ops(micro_files, tmp_path):
    model_path = tmp_path / "cars.tflite"
    shutil.copy(micro_files["cars"], model_path)
    content = model_path.read_bytes()
    measured = find_arena_bytes(model_path)["arena_bytes"]
    paths = firmware.write_firmware_sources(model_path, measured)
    assert {p.name for p in paths.values()} == {
        "cars_model_data.h", "cars_model_data.cc", "cars_op_resolver.h"}
    assert "alignas(16) const unsigned char g_cars_model_data[] = {" in paths["model_data_cc"].read_text()

    ops = _model_ops(content)
    resolver_text = paths["op_resolver_h"].read_text()
    methods = re.findall(r"resolver\.(Add\w+)\(\);", resolver_text)
    # The resolver holds each op of the model once, no other, and N is their count.
    assert sorted(firmware.op_key(m) for m in methods) == sorted(firmware.op_key(op) for op in ops)
    assert f"tflite::MicroMutableOpResolver<{len(ops)}> CarsOpResolver()" in resolver_text

    stub = "\n".join(f'  int {m}() {{ return Register("{m}"); }}' for m in firmware.TFLM_ADD_METHODS)
    include = tmp_path / "include" / "tensorflow" / "lite" / "micro"
    include.mkdir(parents=True)
    (include / "micro_mutable_op_resolver.h").write_text(_RESOLVER_STUB % stub)
    (tmp_path / "main.cc").write_text(_FIRMWARE_MAIN % {"stem": "cars", "camel": "Cars"})
    binary = tmp_path / "firmware"
    subprocess.run([_compiler(), "-std=c++17", "-c", "-Wall", "-Werror", paths["model_data_cc"],
                    "-o", tmp_path / "model_data.o"], check=True)
    subprocess.run([_compiler(), "-std=c++17", "-Wall", "-Werror", f"-I{tmp_path / 'include'}",
                    tmp_path / "main.cc", tmp_path / "model_data.o", "-o", binary], check=True)

    assert subprocess.run([binary, "dump"], capture_output=True, check=True).stdout == content
    lines = subprocess.run([binary], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(lines[:-2]) == sorted(methods) and lines[-2] == f"ops={len(ops)}"
    arena = int(lines[-1].removeprefix("arena="))
    assert arena == firmware.arena_size(measured) >= measured * (1 + firmware.ARENA_MARGIN)
    assert arena % firmware.ARENA_ALIGN_BYTES == 0 and arena_runs(model_path, arena)


def test_every_resolver_method_names_a_builtin_op():
    from ai_edge_litert import schema_py_generated as schema

    builtin = {firmware.op_key(name) for name in vars(schema.BuiltinOperator) if name.isupper()}
    assert [m for m in firmware.TFLM_ADD_METHODS if firmware.op_key(m) not in builtin] == []
    assert firmware.op_key("AddConv2D") == firmware.op_key("CONV_2D") == "CONV2D"


def test_firmware_sources_reject_what_tflm_cannot_take():
    with pytest.raises(ValueError, match=r"no Add method.*Received: ops=\['CUSTOM_THING'\]"):
        firmware.op_resolver_source("cars", ["CONV_2D", "CUSTOM_THING"], 4096, "int8/cars.tflite")
    with pytest.raises(ValueError, match=r"positive number of bytes. Received: arena_bytes=0"):
        firmware.arena_size(0)
    assert firmware.c_identifier("vgg-flowers") == "vgg_flowers"
    assert firmware.c_identifier("3d_shapes") == "domain_3d_shapes"
