"""How should the tasks be grouped? At most `budget` groups, together covering every task."""
import numpy as np
import pandas as pd

import negtransfer

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "dose", "bmi", "noise"])
frame["sick"] = (frame.age + frame.dose > 0).astype(int)
frame["worse"] = (frame.age - frame.bmi > 0).astype(int)
frame["stay"] = 2 * frame.dose + rng.normal(size=300)

report = negtransfer.group(frame, tasks=["sick", "worse", "stay"], budget=2, method="hoa", rounds=1,
                           repeats=1, max_epochs=5)
print("chosen groups:", report.selected_groups)
print(report.to_frame())  # per task: its group and the test loss alone, with all tasks, in the chosen group
