"""The choices of the jobs' options, in a module without imports.

The command line builds its option choices from these tuples (so ``negtransfer
--help`` needs neither PyTorch nor the jobs), and the jobs' ``check`` methods
validate against the same tuples: each choice is written once.
"""

#: What the grouping job's selection maximises (``GroupingOptions.objective``, ``--objective``).
OBJECTIVES = ("total-loss", "mean-gain", "metric")
#: The split whose gains fit the grouping job's predictor (``GroupingOptions.gain_split``, ``--gain-split``).
GAIN_SPLITS = ("validation", "test")
#: f(S) of the source-selection job (``SourceOptions.loss``, ``--loss``), in the order the command line lists them.
SOURCE_LOSSES = ("cross_entropy", "mse", "margin", "logit_margin", "zero_one")
#: How the source-selection job trains its models (``SourceOptions.training``, ``--training``).
SOURCE_TRAININGS = ("parity", "task-modeling", "legacy")
#: The thresholds the source-selection job tries (``SourceOptions.grid``, ``--grid``).
THRESHOLD_GRIDS = ("paper", "all")
#: How the source-selection job chooses its threshold (``SourceOptions.threshold_by``, ``--threshold-by``).
THRESHOLD_BY = ("validation", "surrogate")
#: The exhaustive up-to-two-sources baseline (``SourceOptions.exhaustive_pairs``, ``--exhaustive-pairs``).
EXHAUSTIVE_PAIRS = ("auto", "on", "off")

#: The data kinds of the jobs that train hard-sharing models (gains, group, sources, compare-grouping): tables, and
#: examples of any shape (the built-in mlp flattens images and sequences; cnn, lstm, transformer and a user's
#: factory read them as they are).
MODEL_KINDS = ("table", "per-task-rows", "domains", "images", "sequences")
#: The source-selection job's surrogate of f(S) (``SourceOptions.surrogate``, ``--surrogate``).
SURROGATES = ("linear", "kernel")
