"""TFDS (array_record) copies of s1K, s1K-1.1, AIME24 and MATH500: built once with ``s1jax data prepare``, read on
every host with ``tfds.data_source`` and no TensorFlow.

``schemas`` (plain data: names, versions, columns) and ``reader`` (``tfds:NAME/VERSION`` sources: checks + reading)
import ``tensorflow_datasets`` only when a dataset is opened; ``builders`` (the ``GeneratorBasedBuilder`` classes)
and ``prepare`` (build + summary) import it at module level.
"""
