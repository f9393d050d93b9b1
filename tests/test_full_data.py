"""What the defaults must reach on the full Pitchfork data."""
import pytest
import run_record



@pytest.mark.slow
def test_defaults_reach_the_quality_targets(full_run):
    record = run_record.read(full_run)
    quality = record.quality
    # Issue 2 asks for 95% and 60%; the benchmark's tuning (issue 4) for 98% and 85%.
    assert quality["genre"]["trained"] >= 0.98
    assert quality["score"]["trained"] >= 0.85
    assert record.artists == 8630 and record.state == "finished"
