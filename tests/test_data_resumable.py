"""The train loader's (seed, epoch) order and its mid-epoch resume state, in plain PyTorch and under Lightning."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_daa.data.resumable import ResumableDataLoader, ResumableSampler
from lit_daa.errors import InputError

ROWS = list(range(10))  # a dataset of 10 rows whose items are their indices


def loader(batch_size: int = 3, seed: int = 1, rows: list[int] = ROWS, **sampler_args) -> ResumableDataLoader:
    sampler = ResumableSampler(rows, batch_size=batch_size, seed=seed, **sampler_args)
    return ResumableDataLoader(rows, batch_size=batch_size, sampler=sampler, collate_fn=list)


def test_each_epoch_is_a_permutation_drawn_from_seed_and_epoch():
    dl = loader()
    epoch0, epoch1 = [sum(dl, []) for _ in range(2)]  # a new pass over the loader starts the next epoch
    assert sorted(epoch0) == sorted(epoch1) == ROWS
    assert epoch0 != epoch1 and epoch0 != ROWS
    assert epoch0 == dl.sampler.epoch_indices(0) and epoch1 == dl.sampler.epoch_indices(1)
    assert sum(loader(), []) == epoch0  # the global RNG plays no part
    torch.manual_seed(123)
    assert sum(loader(), []) == epoch0
    assert sum(loader(seed=2), []) != epoch0
    assert len(dl) == 4 and [len(b) for b in loader()] == [3, 3, 3, 1]


def test_resume_skips_exactly_the_batches_handed_out_and_keeps_the_permutation():
    reference = loader()
    epochs = [list(reference) for _ in range(3)]

    interrupted = loader()
    list(interrupted)  # epoch 0
    batches = iter(interrupted)  # epoch 1: two batches handed out, then the process dies
    seen = [next(batches), next(batches)]
    state = interrupted.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 2
    assert seen == epochs[1][:2]

    resumed = loader()
    resumed.load_state_dict(state)
    assert len(resumed) == 4  # Lightning's progress tracking counts the skipped batches itself
    assert list(resumed) == epochs[1][2:]
    assert list(resumed) == epochs[2]


def test_a_state_saved_at_the_end_of_an_epoch_resumes_at_the_next_epoch():
    reference = loader()
    epochs = [list(reference) for _ in range(2)]
    finished = loader()
    list(finished)
    assert finished.state_dict()["batches_done"] == 4
    resumed = loader()
    resumed.load_state_dict(finished.state_dict())
    assert list(resumed) == epochs[1]


def test_set_epoch_chooses_the_epoch_and_keeps_a_resumed_position():
    dl = loader()
    dl.sampler.set_epoch(5)
    assert sum(dl, []) == dl.sampler.epoch_indices(5)
    dl.sampler.set_epoch(5)  # the same, completed epoch asked again: from its start
    assert sum(dl, []) == dl.sampler.epoch_indices(5)

    resumed = loader()
    resumed.load_state_dict({**dl.state_dict(), "epoch": 2, "batches_done": 1})
    resumed.sampler.set_epoch(2)  # what Lightning calls before the resumed epoch: the position stays
    assert sum(resumed, []) == dl.sampler.epoch_indices(2)[3:]
    resumed.sampler.set_epoch(3)
    assert sum(resumed, []) == dl.sampler.epoch_indices(3)


def test_an_abandoned_iterator_does_not_move_the_position():
    dl = loader()
    old = iter(dl)
    next(old)
    iter(dl)  # created but never iterated: changes nothing
    assert dl.state_dict()["batches_done"] == 1
    new = iter(dl)
    next(new)
    next(old)  # a stale iterator of the previous epoch
    state = dl.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 1)


def test_ranks_share_out_the_permutation():
    shards = [sum(loader(num_replicas=2, rank=r, rows=list(range(9))), []) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4  # the same number of steps on each rank
    assert not set(shards[0]) & set(shards[1])  # and no pair twice
    assert len(set(shards[0]) | set(shards[1])) == 8  # one of 9 rows is left out this epoch


def test_resuming_mid_epoch_with_another_batch_size_is_refused():
    dl = loader(batch_size=3)
    next(iter(dl))
    with pytest.raises(InputError, match="batch size 3 .* batch size 2"):
        loader(batch_size=2).load_state_dict(dl.state_dict())


class Recorder(L.LightningModule):
    """Records the row indices of every batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch.tolist())
        return self.weight * batch.float().sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_checkpoint_saves_trained_batch_count(tmp_path):
    """A checkpoint written in on_train_batch_end after batch k stores k+1, and resuming from it replays the run."""

    def fit(module, ckpt_path=None, callbacks=()):
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=bool(callbacks),
            callbacks=list(callbacks),
            default_root_dir=tmp_path,
        )
        sampler = ResumableSampler(ROWS, batch_size=3, seed=7)
        dl = ResumableDataLoader(ROWS, batch_size=3, sampler=sampler, collate_fn=torch.tensor)
        trainer.fit(module, train_dataloaders=dl, ckpt_path=ckpt_path)

    full = Recorder()
    every_step = ModelCheckpoint(tmp_path / "ckpt", filename="{step}", every_n_train_steps=1, save_top_k=-1)
    fit(full, callbacks=[every_step])
    assert len(full.seen) == 8

    # mid epoch 0, the end of epoch 0, mid epoch 1 -> (epoch, batches trained on in it)
    for step, expected in {2: (0, 2), 4: (0, 4), 5: (1, 1)}.items():
        checkpoint = tmp_path / "ckpt" / f"step={step}.ckpt"
        state = torch.load(checkpoint, weights_only=False)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
        assert (state["epoch"], state["batches_done"]) == expected
        resumed = Recorder()
        fit(resumed, ckpt_path=checkpoint)
        assert full.seen[:step] + resumed.seen == full.seen


def test_length_buckets_keep_a_seeded_permutation_and_group_similar_lengths():
    lengths = [(i * 37) % 101 for i in range(96)]
    sampler = ResumableSampler(range(96), batch_size=4, seed=3, lengths=lengths, bucket_batches=6)
    order = sampler.epoch_indices(0)
    assert sorted(order) == list(range(96))  # still every row once
    assert order == ResumableSampler(range(96), batch_size=4, seed=3, lengths=lengths, bucket_batches=6).epoch_indices(
        0
    )
    assert order != sampler.epoch_indices(1)
    spread = [
        max(lengths[i] for i in order[k : k + 4]) - min(lengths[i] for i in order[k : k + 4]) for k in range(0, 96, 4)
    ]
    plain = ResumableSampler(range(96), batch_size=4, seed=3).epoch_indices(0)
    plain_spread = [
        max(lengths[i] for i in plain[k : k + 4]) - min(lengths[i] for i in plain[k : k + 4]) for k in range(0, 96, 4)
    ]
    assert sum(spread) < sum(plain_spread) / 3  # batches of similar lengths: far less padding


def test_length_buckets_resume_mid_epoch_exactly():
    lengths = [(i * 13) % 29 for i in range(40)]

    def make() -> ResumableDataLoader:
        sampler = ResumableSampler(list(range(40)), batch_size=4, seed=1, lengths=lengths, bucket_batches=3)
        return ResumableDataLoader(list(range(40)), batch_size=4, sampler=sampler, collate_fn=list)

    straight = [batch for batch in make()]
    first = make()
    it = iter(first)
    seen = [next(it) for _ in range(4)]
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert seen + list(resumed) == straight
