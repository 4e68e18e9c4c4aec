"""A new embedding family, and a new thing to train, each need one class and one `register`
line: the shared loop, checkpoints and evaluation take them as they are (README, "Adding a
family or a task")."""
import math

import pytest

from lexi import embeddings, tasks
from lexi.embeddings.trainable import TrainableEmbedding
from lexi.errors import UserError
from lexi.rundir import read_metrics
from lexi.train.loop import train
from lexi.train.task import LanguageModelTask
from test_train import tiny


class ScaledEmbedding(TrainableEmbedding):
    """A trainable table whose input rows are multiplied by `input_scale`."""

    input_scale: float = 1.0

    def embed(self, tokens_BxL, ctx):
        return self.input_scale * super().embed(tokens_BxL, ctx)


class CountingTask(LanguageModelTask):
    """The language-model task, counting how often the loop asks it for its compiled step."""

    def __init__(self):
        self.compiled = 0

    def compile(self, run, val):
        self.compiled += 1
        return super().compile(run, val)


@pytest.fixture
def registries(monkeypatch):
    """Registrations made in a test are undone after it."""
    monkeypatch.setattr(embeddings, "_REGISTRY", dict(embeddings._REGISTRY))
    monkeypatch.setattr(embeddings, "_CLASSES", dict(embeddings._CLASSES))
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))


def test_a_new_family_is_a_class_and_a_register_line(tmp_path, registries):
    embeddings.register("scaled", ScaledEmbedding)
    built = embeddings.build({"kind": "scaled", "input_scale": 3.0}, 64, 32)
    assert isinstance(built, ScaledEmbedding) and built.input_scale == 3.0
    with pytest.raises(UserError, match="input_scal"):
        embeddings.build({"kind": "scaled", "input_scal": 3.0}, 64, 32)  # its fields are checked like any family's

    cfg = tiny("scaled", steps=4, eval_every=2, checkpoint_every=4)
    cfg.embedding = {"kind": "scaled", "input_scale": 2.0}
    train(cfg, tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert any("val_loss" in r for r in rows) and all(math.isfinite(r.get("loss", 0.0)) for r in rows)


def test_a_new_task_is_a_class_and_a_register_line(tmp_path, registries):
    made = []
    tasks.register("counting", lambda: made.append(CountingTask()) or made[-1])
    cfg = tiny(steps=2, eval_every=0, checkpoint_every=2)
    cfg.task = "counting"
    train(cfg, tmp_path / "by_name")
    assert len(made) == 1 and made[0].compiled == 1

    given = CountingTask()  # or handed to the loop directly
    train(tiny(steps=2, eval_every=0, checkpoint_every=2), tmp_path / "handed", given)
    assert given.compiled == 1

    cfg.task = "nothing"
    with pytest.raises(UserError, match="'lm', 'zett', 'counting'"):
        tasks.task_for(cfg)
