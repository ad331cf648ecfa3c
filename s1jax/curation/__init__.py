"""s1K curation (s1 paper, Section 2): a question pool -> decontaminated, quality-filtered, hard, diverse 1,000.

Stages: :mod:`.decontam`, :mod:`.quality`, :mod:`.difficulty`, :mod:`.diversity`, run in order by :mod:`.pipeline`;
:mod:`.io` loads pools and writes outputs; :mod:`.solvers` is the only module that reaches into ``inference`` and
``eval`` (reference models, grading, benchmark questions).
"""
