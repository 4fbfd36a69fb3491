"""GPU clocks, temperature and throttle reasons through NVML (nvidia-ml-py), read-only.

latbench never changes clocks (the GPU may be shared); it reads them around each measured row and
flags rows taken while the GPU was throttled or clocked below 75 % of its maximum SM clock (the
rule nvbench uses to discard samples).
"""

from __future__ import annotations

import sys
from functools import lru_cache

#: Throttle reasons that change kernel speed. "GPU idle" and "applications clocks setting" do not.
_SLOWING = {
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
}
LOW_CLOCK_FRACTION = 0.75


@lru_cache(maxsize=1)
def _nvml():
    """The initialised pynvml module, or None where NVML is absent (no driver, no package)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - any failure means "no NVML here"
        return None


def driver_version() -> str | None:
    """The NVIDIA driver version ("580.159.03"), or None where NVML is absent or fails."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        v = nv.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001 - a failing NVML means "unknown", never a crash
        return None
    return v.decode() if isinstance(v, bytes) else v


class GpuMonitor:
    """Reads one GPU's state; every method degrades to empty readings without NVML.

    An NVML call that fails mid-build (driver hiccup, a GPU that stops answering NVML, a binding
    without some function) never stops a build: the row gets `nvml_error` instead of readings and
    one warning is printed per monitor.
    """

    def __init__(self, index: int = 0):
        nv = _nvml()
        self._nv, self._handle, self.max_sm_clock_mhz = nv, None, 0
        self._warned = False
        if nv is None:
            return
        try:
            self._handle = nv.nvmlDeviceGetHandleByIndex(index)
            self.max_sm_clock_mhz = nv.nvmlDeviceGetMaxClockInfo(self._handle, nv.NVML_CLOCK_SM)
        except Exception as err:  # noqa: BLE001 - any NVML failure: no readings, not a crash
            self._warn(err)
            self._nv = None

    @property
    def available(self) -> bool:
        return self._nv is not None

    def _warn(self, err: BaseException) -> str:
        text = f"{type(err).__name__}: {err}".strip()[:200]
        if not self._warned:
            self._warned = True
            print(f"latbench: warning: NVML failed ({text}); rows are flagged nvml_error and carry "
                  "no clock or throttle readings", file=sys.stderr)
        return text

    def snapshot(self) -> dict:
        """SM clock (MHz), temperature (C), power (W) and the active slowing throttle reasons;
        {"nvml_error": text} when NVML fails."""
        if not self._nv:
            return {}
        nv, h = self._nv, self._handle
        try:
            # Renamed "clocks event reasons" in newer NVML; the throttle-reasons name still works.
            reasons_fn = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
                          or nv.nvmlDeviceGetCurrentClocksThrottleReasons)
            mask = reasons_fn(h)
            return {
                "sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                "temp_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "throttle_reasons": [name for name, bit in _SLOWING.items() if mask & bit],
            }
        except Exception as err:  # noqa: BLE001 - see the class docstring
            return {"nvml_error": self._warn(err)}

    def summarize(self, before: dict, after: dict) -> dict:
        """Row columns from readings taken before and after a measurement."""
        if not before or not after:
            return {}
        error = before.get("nvml_error") or after.get("nvml_error")
        if error:
            return {"nvml_error": error, "throttled": None}
        reasons = sorted(set(before["throttle_reasons"]) | set(after["throttle_reasons"]))
        clock = min(before["sm_clock_mhz"], after["sm_clock_mhz"])
        low = self.max_sm_clock_mhz and clock < LOW_CLOCK_FRACTION * self.max_sm_clock_mhz
        return {
            "sm_clock_mhz": clock,
            "temp_c": max(before["temp_c"], after["temp_c"]),
            "throttled": bool(reasons) or bool(low),
            "throttle_reasons": ",".join(reasons + (["low_sm_clock"] if low else [])),
        }
