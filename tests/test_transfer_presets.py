"""The transfer presets (issue 16): the paper's hyper-parameters, a one-GPU-hour preset of the same shape, and a
quickstart big enough to mean something (>= 8 unseen tasks x 20 test instances, 3 seeds)."""

from __future__ import annotations

from taskscope.pipeline.config import CONFIG_DIR, load_config
from taskscope.train.config import TrainConfig

SNI = ["tasks.source=sni:/data/natural-instructions"]  # the paper presets' required setting


def test_paper_preset_has_the_papers_hyper_parameters() -> None:
    config = load_config(CONFIG_DIR / "transfer_paper_t5.yaml", SNI)
    assert config.model == "google/t5-large-lm-adapt"
    it = TrainConfig.model_validate(config.train_config("proportional"))
    assert (it.lr, it.batch_size * it.grad_accum, it.epochs, it.warmup_steps, it.checkpoint_every, it.lora) == (
        5e-4, 16, 3.0, 500, 50_000, None)
    limits = sorted(config.train_config(n).data_limit for n in config.analyses.data_limit)
    assert limits[0] == 10 and limits[-1] == 5000
    assert config.tasks.options == {"preset": "mueller"} and (config.tasks.validation, config.tasks.test) == (0.1, 0.1)
    assert (config.tasks.unseen_test, config.tasks.fewshot_pool) == (100, 40)
    fewshot = TrainConfig.model_validate(config.fewshot.train)
    assert (fewshot.schedule, fewshot.lr, fewshot.epochs, fewshot.batch_size, fewshot.lora.r) == (
        "constant", 1e-3, 5.0, 32, 16)
    assert config.icl.k == 3 and config.icl.exemplars == "positive_examples"
    assert TrainConfig.model_validate(config.train_config("proportional_unsupervised")).unsupervised_every == 3
    assert "Expected compute" in (CONFIG_DIR / "transfer_paper_t5.yaml").read_text()


def test_gpu_hour_preset_keeps_the_shape_at_a_smaller_size() -> None:
    paper = load_config(CONFIG_DIR / "transfer_paper_t5.yaml", SNI)
    gpu = load_config(CONFIG_DIR / "transfer_gpu_hour.yaml", SNI)
    assert gpu.model == paper.model and gpu.tasks.options == paper.tasks.options
    it = TrainConfig.model_validate(gpu.train_config("proportional"))
    assert it.max_steps <= 5000 and it.lr == 5e-4 and it.warmup_steps == 500
    assert gpu.tasks.max_unseen_tasks >= 8 and gpu.tasks.max_seen_tasks < 619


def test_quickstart_has_at_least_8_unseen_tasks_x_20_test_instances_and_2_seeds() -> None:
    from taskscope.studies.transfer.tasks import split_seen_unseen, unseen_task

    config = load_config(CONFIG_DIR / "transfer_quickstart.yaml")
    tasks = config.tasks.model_dump(mode="json")
    _, _, unseen = split_seen_unseen(tasks)
    assert len(unseen) >= 8
    for task in unseen:
        _, test, pool = unseen_task(tasks, task.name)
        assert len(test) >= 20 and len(pool) >= max(config.fewshot.shots)
    assert len(config.fewshot.seeds) >= 2  # a spread over seeds needs two; the findings' intervals are over tasks
    assert config.fewshot.shots[0] == 0 and max(config.fewshot.shots) > 0  # the sanity rule is checkable
