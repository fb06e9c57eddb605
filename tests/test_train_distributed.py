"""Two CPU processes under `accelerate launch` (gloo DDP) end with identical weights and a falling loss."""


from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from taskscope.train.logging import read_log

SRC = Path(__file__).resolve().parents[1] / "src"

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    from accelerate import PartialState
    from safetensors.torch import save_file
    from taskscope.models import tiny_model
    from taskscope.tasks.formats import FormattedExample
    from taskscope.train import TrainConfig, train

    out = sys.argv[1]
    letters = "abcdefghijklmnopqrstuvwxyz"
    data = {"copy": [FormattedExample("copy", str(i), f"copy {c} ->", (f" {c}",), 0) for i, c in enumerate(letters)]}
    config = TrainConfig(lr=1e-2, batch_size=4, grad_accum=2, epochs=4, lora=None, log_every=1, checkpoint_every=3)
    loaded = tiny_model("llama", seed=3)
    result = train(loaded, data, config, out, progress=False)
    rank = PartialState().process_index
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_stay_in_sync(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    # `--multi_gpu` selects accelerate's torchrun launcher; on a machine without GPUs the loop then asks for
    # `Accelerator(cpu=True)`, which runs DDP on gloo (`--cpu` would start a single process)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(script), str(out)]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    log = read_log(out / "log.jsonl")
    # 26 examples -> 7 micro-batches of 4; a step takes 2 per process x 2 processes = 4 -> 2 steps per epoch
    assert [r["step"] for r in log] == list(range(1, 9))
    losses = [r["loss"] for r in log]
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2])
    assert {p.name for p in (out / "checkpoints" / "step-000003").iterdir()} >= {"rng-rank0.pt", "rng-rank1.pt", "model"}
