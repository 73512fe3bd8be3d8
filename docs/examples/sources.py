"""Which source tasks should a target task be trained with? A surrogate of the target's loss over source subsets."""
import numpy as np
import pandas as pd

import negtransfer

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "dose", "bmi", "noise"])
frame["sick"] = (frame.age + frame.dose > 0).astype(int)
frame["worse"] = (frame.age - frame.bmi > 0).astype(int)
frame["stay"] = 2 * frame.dose + rng.normal(size=300)

report = negtransfer.sources(frame, target="sick", tasks=["sick", "worse", "stay"], alpha=1, n_subsets=4,
                             holdout=0, repeats=1, max_epochs=5, affinity_baseline=False)
print("selected sources:", report.selected)
print(report.to_frame())  # one row per source: relevance (negative = helps the target), selected
