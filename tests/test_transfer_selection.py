"""The transfer study's task selection (issue 16): fractional seen-task splits and the mueller preset end to end."""

from __future__ import annotations

import json

import pytest

from taskscope.pipeline.config import ConfigError, config_from_dict
from taskscope.studies.transfer.config import TransferConfig


def test_seen_splits_default_to_the_papers_ten_percent_and_accept_fractions() -> None:
    tasks = TransferConfig().tasks
    assert (tasks.validation, tasks.test) == (0.1, 0.1)
    assert TransferConfig(tasks={"validation": 0.05, "test": 12}).tasks.test == 12
    for bad, field in (({"test": 1.5}, "tasks.test"), ({"validation": -1}, "tasks.validation"),
                       ({"test": 0}, "tasks.test")):
        with pytest.raises(ConfigError, match=field):
            config_from_dict({"study": "transfer", "tasks": bad})


def test_the_study_splits_seen_and_unseen_by_the_preset_and_seen_tasks_by_fraction(write_sni, sni_data, tmp_path):
    from taskscope.studies.transfer.tasks import split_seen_unseen
    from taskscope.tasks.splits import split_task

    for name, data in {"task1_seen": sni_data(n_instances=50),
                       "task2_unseen": sni_data(n_instances=150, Categories=["Title Generation"]),
                       "task3_twitter": sni_data(n_instances=50, Domains=["Social Media -> Twitter"])}.items():
        write_sni(name, data)
    config = TransferConfig(tasks={"source": f"sni:{tmp_path / 'sni'}", "options": {"preset": "mueller"}})
    _, seen, unseen = split_seen_unseen(config.tasks)
    assert [t.name for t in seen] == ["task1_seen"] and [t.name for t in unseen] == ["task2_unseen"]
    split = split_task(seen[0], test=config.tasks.test, validation=config.tasks.validation, train=None)
    assert (len(split.test), len(split.validation), len(split.train)) == (5, 5, 40)
    json.dumps(config.tasks.model_dump(mode="json"))  # the stage key stays serialisable
