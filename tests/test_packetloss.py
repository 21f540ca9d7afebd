"""One ``--loss`` grammar for every command (nextblock.packetloss): the demo, evaluate, the relay and
the network lab, bench/e2e.py and the model tools read a spec the same way, and what the old
grammars meant differently (the demo's and the relay's ``bernoulli:PERCENT``, ``ge:``) is refused
with what to write instead."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextblock import demo
from nextblock.commands import demo as demo_command
from nextblock.commands import evaluate
from nextblock.model import guess_blend
from nextblock.netlab import relay
from nextblock.netlab.impairments import BernoulliLoss, GilbertElliottLoss, make_loss_model, rng_streams
from nextblock.netlab.link import LinkSpec
from nextblock.packetloss import LossSpec, parse_loss_spec

REPO = Path(__file__).resolve().parents[1]


def _bench_e2e():
    spec = importlib.util.spec_from_file_location("bench_e2e", REPO / "bench" / "e2e.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relay_drops(spec: str, n: int, seed: int = 3) -> np.ndarray:
    model = make_loss_model(spec, rng_streams(seed)[0])
    return np.array([model.drop() for _ in range(n)])


def _bursts(mask: np.ndarray) -> np.ndarray:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


# ----------------------------------------------------------------------------- the old grammars are refused
@pytest.mark.parametrize(
    "old, says",
    [
        ("bernoulli:5", ["bernoulli:0.05", "bernoulli:5%"]),  # the demo's 5 %
        ("bernoulli:10", ["bernoulli:0.1", "bernoulli:10%"]),
        ("bernoulli:1", ["bernoulli:0.01", "bernoulli:100%"]),  # 1 % there, every packet here
        ("ge:0.02,0.3", ["gilbert:0.02,0.3"]),  # the relay's bursts
        ("ge:0.02,0.3,0.9,0.01", ["gilbert:0.02,0.3,0.9,0.01"]),
        ("gilbert-elliott:0.02,0.25", ["gilbert:0.02,0.25"]),
    ],
)
def test_what_the_old_grammar_meant_otherwise_is_refused_with_what_to_write(old, says):
    with pytest.raises(ValueError) as info:
        parse_loss_spec(old)
    for text in says:
        assert text in str(info.value)


def test_every_command_refuses_the_old_percent_with_the_same_message(tmp_path, capsys):
    with pytest.raises(ValueError) as info:
        parse_loss_spec("bernoulli:5")
    message = str(info.value)
    parsers = {
        "demo": demo_command.build_parser().parse_args,
        "relay": relay.build_parser().parse_args,
        "guess_blend": guess_blend.parse_args,
    }
    argv = {
        "demo": ["--loss", "bernoulli:5"],
        "relay": ["--listen", "127.0.0.1:0", "--forward", "127.0.0.1:9", "--loss", "bernoulli:5"],
        "guess_blend": ["m.tflite", "--validation", "v", "--loss", "bernoulli:5"],
    }
    for name, parse in parsers.items():
        with pytest.raises(SystemExit) as exit_info:
            parse(argv[name])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err, name
    # evaluate parses its losses in the harness and says why with exit status 2
    assert evaluate.main([str(tmp_path), "--loss", "bernoulli:5", "--quiet", "--no-visqol"]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        _bench_e2e().main(["--loss", "bernoulli:5"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="bernoulli:0.05"):
        LinkSpec(loss="bernoulli:5").parsed_loss()
    with pytest.raises(ValueError, match="bernoulli:0.05"):
        make_loss_model("bernoulli:5", rng_streams(0)[0])


def test_the_relay_command_line_refuses_it_too():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nextblock.netlab.relay",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:9",
            "--loss",
            "ge:0.02,0.3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "write gilbert:0.02,0.3" in r.stderr


# ----------------------------------------------------------------------------- one meaning everywhere
def test_a_percentage_and_a_probability_are_the_same_spec():
    assert parse_loss_spec("bernoulli:5%") == parse_loss_spec("bernoulli:0.05") == LossSpec("x", "bernoulli", (0.05,))
    assert parse_loss_spec("bernoulli:100%").params == (1.0,)
    assert parse_loss_spec("gilbert:0.02,0.3") == parse_loss_spec("gilbert:0.02,0.3,1,0")
    with pytest.raises(ValueError, match="0% to 100%"):
        parse_loss_spec("bernoulli:150%")


@pytest.mark.parametrize("spec", ["bernoulli:0.05", "bernoulli:0.1", "bernoulli:5%"])
def test_bernoulli_means_the_same_rate_in_every_command(spec):
    p = parse_loss_spec(spec).params[0]
    args = demo_command.build_parser().parse_args(["--loss", spec])
    relay_model = make_loss_model(args.loss, rng_streams(1)[0])
    assert isinstance(relay_model, BernoulliLoss) and relay_model.p == p
    assert LinkSpec(loss=args.loss).bernoulli_percent() == pytest.approx(100 * p)  # nft, netem, simloss
    n = 200_000
    demo_rate = demo._lost_mask(args.loss, 1, n, lead_in_blocks=0)[:-1].mean()  # the demo's stand-in draws as the relay
    evaluate_rate = parse_loss_spec(spec).mask(n, np.random.default_rng(1)).mean()
    relay_rate = _relay_drops(spec, n).mean()
    for rate in (demo_rate, evaluate_rate, relay_rate):
        assert rate == pytest.approx(p, rel=0.05)


def test_gilbert_means_the_same_process_in_the_relay_and_the_harness():
    spec = parse_loss_spec("gilbert:0.02,0.25")
    relay_model = make_loss_model("gilbert:0.02,0.25", rng_streams(0)[0])
    assert isinstance(relay_model, GilbertElliottLoss)
    assert (relay_model.p, relay_model.r, relay_model.loss_bad, relay_model.loss_good) == spec.params
    assert relay_model.mean_loss_fraction() == pytest.approx(spec.expected_rate)
    offline = spec.mask(300_000, np.random.default_rng(2))
    live = _relay_drops("gilbert:0.02,0.25", 300_000)
    for mask in (offline, live):
        assert mask.mean() == pytest.approx(0.02 / 0.27, rel=0.06)
        assert _bursts(mask).mean() == pytest.approx(1 / 0.25, rel=0.06)


def test_gilbert_with_loss_inside_and_between_bursts():
    spec = parse_loss_spec("gilbert:0.05,0.2,0.6,0.01")
    assert spec.expected_rate == pytest.approx(0.2 * 0.6 + 0.8 * 0.01)
    offline = spec.mask(300_000, np.random.default_rng(4)).mean()
    live = _relay_drops("gilbert:0.05,0.2,0.6,0.01", 300_000).mean()
    assert offline == pytest.approx(spec.expected_rate, rel=0.05)
    assert live == pytest.approx(spec.expected_rate, rel=0.05)
    # the simple model (1, 0) draws exactly as before LOSS_BAD/LOSS_GOOD existed (the model card's
    # masks stay the same): one uniform per block, the first state from the stationary share
    simple = parse_loss_spec("gilbert:0.05,0.2").mask(1000, np.random.default_rng(7))
    draws = np.random.default_rng(7).random(1001)
    bad, expected = bool(draws[0] < 0.05 / 0.25), []
    for i in range(1000):
        if i > 0:
            bad = (draws[i] >= 0.2) if bad else (draws[i] < 0.05)
        expected.append(bad)
    np.testing.assert_array_equal(simple, expected)


def test_deterministic_patterns_lose_the_same_packets_in_the_relay_and_the_harness(tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("0 0 1 1 0 1\n")
    for spec in ("list:2,3,7", "periodic:5,2", f"trace:{trace}", "none"):
        offline = parse_loss_spec(spec).mask(40, np.random.default_rng(0))
        np.testing.assert_array_equal(_relay_drops(spec, 40), offline, err_msg=spec)
    assert parse_loss_spec("list:2,3,7").mask(10, np.random.default_rng(0)).tolist() == [
        False,
        False,
        True,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
    ]


def test_bench_e2e_patterns_mean_what_their_names_say():
    patterns = _bench_e2e().PATTERNS
    for name, percent in (("bernoulli-1", 1), ("bernoulli-5", 5), ("bernoulli-10", 10)):
        assert parse_loss_spec(patterns[name]).expected_rate == pytest.approx(percent / 100)
    assert parse_loss_spec(patterns["bursts-ge"]).expected_rate == pytest.approx(0.02 / 0.32)


def test_defaults_are_five_percent_everywhere():
    assert parse_loss_spec(demo_command.build_parser().parse_args([]).loss).expected_rate == 0.05
    assert parse_loss_spec(LinkSpec().loss).expected_rate == 0.05
    assert "bernoulli:0.05" in evaluate.build_parser().format_help()
