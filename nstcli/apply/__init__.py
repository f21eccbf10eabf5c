"""The ``nst apply`` engine: stylise many images with an exported nst ONNX model (onnxruntime).

Deliberately torch-free (onnxruntime, Pillow, numpy; PyAV and OpenCV for videos): a one-image run must start in well under a
second. The modules:

  config       ApplyConfig, Job, Progress, Summary; validate, parse_shard, parse_mix
  bundled      resolve_model: a model file, or the bundled model of --style / --mix / --region
  runtime      onnxruntime: installed runtimes, providers and their options, create_session
  model        Model: metadata, style selection and mixing, padding, IO binding, tiled runs
  jobs         plan_jobs: inputs to (source, target) jobs, names, shards, existing outputs
  stylizer     make_stylizer: settings -> Stylizer, the model on a batch of arrays (also for your own programs)
  pipeline     run_apply: the threaded decode -> infer -> encode pipeline
  ray_runner   run_apply_ray: the same run as a Ray Data pipeline on a cluster (--ray; the ray extra)
  video        stylise_video: a video streamed through decode -> stylise -> encode (PyAV; the video extra)
  temporal     --temporal off|blend|flow: optical flow, warping, occlusion masks, scene cuts, the flicker figure
  environment  environment_report for ``nst info``
"""
