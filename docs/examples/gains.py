"""Which tasks help or hurt each other? The gain of each task in each group against its single-task model."""
import numpy as np
import pandas as pd

import negtransfer

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "dose", "bmi", "noise"])
frame["sick"] = (frame.age + frame.dose > 0).astype(int)
frame["worse"] = (frame.age - frame.bmi > 0).astype(int)
frame["stay"] = 2 * frame.dose + rng.normal(size=300)

report = negtransfer.gains(frame, tasks=["sick", "worse", "stay"], groups="all", repeats=1, max_epochs=5)
table = report.to_frame()  # one row per (group, task); gain < 0 is negative transfer
print(table[["group", "task", "gain"]])
print("negative transfer:", table.loc[table.gain < 0, ["group", "task"]].values.tolist())
