"""Deployment of the reduced models: TFLite files for Android and microcontrollers, and checks.

Modules, one job each (import the one you need; this package imports nothing on its own so that
the TFLM arena probes and the QAT worker start without loading what they do not use):

- ``convert``: ``export_android`` (one file, one signature per domain, float32 or dynamic-range,
  shared weights stored once) and ``export_micro`` (one full-int8 file per domain). Each
  conversion runs in a child process (``convert_worker``) and lands atomically (``atomic``).
- ``litert``: ``LiteRTModel``, signature runners on LiteRT with int8 (de)quantization.
- ``micro``: ``MicroModel`` on TensorFlow Lite Micro; ``find_arena_bytes``, the arena search.
- ``firmware``: ``write_firmware_sources``, an int8 file as TFLM firmware sources (the model
  as a C array, an op resolver with exactly its ops, the arena size).
- ``runtime_checks``: ``run_checks``, the files run in LiteRT and TFLM: accuracy and agreement
  of every runtime against Keras.
- ``mcu``: ``check_mcu_budget``, flash/RAM fit with margins and optional enforcement.
- ``qat``: ``quantization_aware_int8`` (extra ``[qat]``), run in its own process (``qat_worker``).
- ``timing``: latency of signatures in LiteRT, timed in alternating rounds.
- ``promise``: the files' stored parameters, bytes and latency against the unpruned backbone's.
- ``absorb``: ``android_models``, the Keras models behind each Android layout's signatures.
- ``file_checks``: ``check_int8_model``, ``check_android_model``, a converted file's ops, dtypes,
  quantization and signatures, checked before it lands.
- ``sharing``, ``saved_model``, ``signatures``, ``quantization``, ``child``: the pieces the above
  are built from.
"""
