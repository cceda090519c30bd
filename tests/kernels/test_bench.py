"""python -m kernels.bench runs every case and ends with one JSON line (at a toy size, without fla)."""

import json

from kernels import bench


def test_bench_prints_a_table_then_one_json_line(capsys) -> None:
    bench.main(["--shape", "1", "40", "1", "16", "16", "--repeats", "1", "--no-fla", "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    measured = {(result["case"], result["implementation"]) for result in summary["results"]}
    assert measured == {
        (case, implementation) for case in bench.CASES for implementation in ("naive", "torch_chunk64", "torch_chunk32")
    } | {(bench.CONV_CASE, "naive_conv1d"), (bench.CONV_CASE, "torch_shift")}
    assert all(result["tokens_per_s"] > 0 for result in summary["results"])
    assert all(result["max_relative_error"] < 1e-4 for result in summary["results"])
    assert summary["failures"] == []
    assert {ratio["versus"] for ratio in summary["ratios"]} == {"naive", "naive_conv1d"}
    assert lines[0].startswith("device: cpu (threads=1); dtype: float32; B=1 T=40 H=1 K=16 V=16")
