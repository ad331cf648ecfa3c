"""Build s1K and the shipped eval sets (AIME24, MATH500) as TFDS array_record datasets for tfds: sources.

    s1jax data prepare --config=configs/data/prepare.py --config.data_dir=gs://BUCKET/tfds
    s1jax data prepare --config=configs/data/prepare.py --config.datasets=s1k_1_1 --config.sources.s1k_1_1=DIR

Then train with ``--config.data.source=tfds:s1k/1.0.0 --config.data.tfds_dir=<data_dir>`` and evaluate with
``--config.data_path=tfds:aime24/1.0.0 --config.tfds_dir=<data_dir>``.
"""

import os

import ml_collections

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_EVAL_DATA = os.path.join(_REPO_ROOT, "data", "eval")


def get_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # local directory or gs://bucket/path; TFDS's own default, so tfds:NAME/VERSION resolves without tfds_dir there
    cfg.data_dir = os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    cfg.datasets = "s1k,aime24,math500"  # comma-separated, from: s1k, s1k_1_1, aime24, math500
    # where each dataset's rows come from: a hub dataset name, or a local .parquet/.jsonl/.json file or directory
    cfg.sources = ml_collections.ConfigDict(
        dict(
            s1k="simplescaling/s1K",
            s1k_1_1="simplescaling/s1K-1.1",
            aime24=os.path.join(_EVAL_DATA, "aime24.jsonl"),
            math500=os.path.join(_EVAL_DATA, "math500.jsonl"),
        )
    )
    cfg.overwrite = False  # True: rebuild a version that is already built (else it is kept and summarised)
    cfg.progress = True  # a progress bar over the rows written
    return cfg
