"""How do named models do on the tasks? Each model trained `runs` times on the same splits."""
import numpy as np
import pandas as pd

import negtransfer

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=["age", "dose", "bmi", "noise"])
frame["hospital"] = rng.choice(["north", "south"], size=400)  # one task per hospital, one label space
frame["sick"] = (frame.age + frame.dose + (frame.hospital == "south") * frame.bmi > 0).astype(int)

report = negtransfer.compare(frame, models=["stl", "bmtl"], task_column="hospital", label="sick", runs=2,
                             iterations=20)
print(report.to_frame().query("task == 'average' and metric == 'accuracy'"))  # model, task, run, metric, value
print(report.summary("accuracy"))  # model -> task -> (mean, standard error) over runs
