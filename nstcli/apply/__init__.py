"""The ``nst apply`` engine: stylise many images with an exported nst ONNX model (onnxruntime).

Deliberately torch-free (onnxruntime, Pillow, numpy): a one-image run must start in well under a
second. The modules:

  config       ApplyConfig, Job, Progress, Summary; validate, parse_shard, parse_mix
  bundled      resolve_model: a model file, or the bundled model of --style / --mix / --region
  runtime      onnxruntime: installed runtimes, providers and their options, create_session
  model        Model: metadata, style selection and mixing, padding, IO binding, tiled runs
  jobs         plan_jobs: inputs to (source, target) jobs, names, shards, existing outputs
  pipeline     run_apply: the threaded decode -> infer -> encode pipeline
  environment  environment_report for ``nst info``
"""
