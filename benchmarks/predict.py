"""``bench predict``: a 48-hour, 3-quantile overload prediction for a SimBench MV grid, end to end, per stage.

The store holds the grid's own profiles for the 28 days before the issue time (2016-01-29 00:00). Two runs after one
untimed warm-up (imports, numba caches): with the forecast model fitted in the run, and with a model fitted before
(the control-room case: models are refitted offline, predictions run every 15 minutes).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

CODE = "1-MV-urban--0-sw"


def run_predict_bench(code: str = CODE, *, train_days: int = 28) -> list[dict[str, Any]]:
    """Seconds per stage of ``predict_store`` (fit included / model fitted before)."""
    import twin
    from twin.forecast import QuantileGBT
    from twin.timeseries.powerflow import write_profiles
    from twin.timeseries.predict import predict_store
    from twin.timeseries.store import Store

    folder = Path(tempfile.mkdtemp(prefix="gridtwin-bench-predict-"))
    try:
        store = Store.create(folder / "s.zarr", origin="2016-01-01", secret="bench")
        profiles = twin.read_simbench_profiles(code).isel(time=slice(0, 96 * train_days))
        write_profiles(store, profiles)
        grid = twin.load(code)
        predict_store(store, grid, horizon="48h", train_days=train_days, write=False)  # warm-up
        model = QuantileGBT().fit(store.dataset("loads")["p_mw"].load())
        rows = []
        for setting, kwargs in (
            ("fit + predict", {"train_days": train_days}),
            ("predict (model fitted before)", {"model": model}),
        ):
            t0 = time.perf_counter()
            result = predict_store(store, grid, horizon="48h", **kwargs)
            rows.append(
                {
                    "setting": setting,
                    "seconds": time.perf_counter() - t0,
                    "stages": result.seconds,
                    "at_risk": len(result.prediction.ranking),
                }
            )
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)
