"""Joint fine-tuning of the text encoder with the interest model (the design article's step 4).

:class:`JointInterestRecommender` is an :class:`~textinterest.models.interest.InterestRecommender`
whose review vectors are not fixed inputs: every training batch runs the history texts through
the encoder, so the gradient of the recommendation loss reaches the encoder's top layers.

    tokens of review j ──encoder (top N layers trainable)──► mean pool ──► e_j (D)
    e_1..e_T ──► DynamicInterestModel (LSTM, decomposition, composition, CF) ──► loss

What stays fixed, and why:

* Item text vectors u_i (the mean of an item's training reviews) are computed once from the
  frozen encoder. Recomputing them inside every step would cost a pass over all training
  texts per batch.
* Between training and scoring, the review vectors of every training text are recomputed once
  with the current encoder (``_refresh_review_vectors``), so validation and test predictions see
  the tuned encoder. This costs one encoder pass over the training texts per validation.

When only the top blocks train (``train_layers=N``), the frozen lower blocks give the same
output for a text at every step. Their output is computed once for every training text and kept
(``cache_frozen_layers``), so each step and each refresh runs only the N trainable blocks. The
frozen blocks then run in eval mode (no dropout), as a frozen feature extractor would. The cache
is checked against a full forward pass when it is built, and skipped (``frozen_cache_status_``
says why) when it would not fit ``frozen_cache_max_bytes`` or the encoder is not laid out as
expected.

What trains in the encoder (``finetune``):

* ``"top-layers"`` (default): the top ``train_layers`` transformer blocks, whole.
* ``"lora"``: low-rank adapters (:class:`~textinterest.text.encoder_layers.LoraSettings`; the
  optional ``lora`` extra, ``peft``) on the attention query and value maps of every block (or of
  the top ``lora.layers``); the encoder's own weights stay frozen.
* ``"frozen"``: nothing; the review vectors stay the inputs they were, as in the plain interest
  model (the baseline of the other two, with the same code path around it).

A saved model (:func:`~textinterest.models.artifact.save_recommender`) keeps, of the encoder, only
what trained (the top blocks or the adapters); the frozen weights come back from the encoder
reference, whose content hash the artifact checks.

On a CPU, train only the top layer (``train_layers=1``) on a subset; on a GPU the whole encoder
can train under AMP (``train_layers=None``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from textinterest.models.interest import InterestConfig, InterestRecommender, TextFeatures
from textinterest.text.encoder_layers import LoraSettings, add_lora_adapters, require_peft
from textinterest.text.features import _transformer_layers_path, freeze_all_but_last_layers

__all__ = ["FINETUNE_MODES", "JointInterestRecommender", "LoraSettings", "joint_param_groups"]

FINETUNE_MODES = ("frozen", "top-layers", "lora")
# encoder learning rates when none is given: whole blocks move slowly (the article's 2e-5);
# adapters start at zero and take the larger steps the LoRA paper used for BERT-size encoders
DEFAULT_ENCODER_LR = {"top-layers": 2e-5, "lora": 5e-4, "frozen": 2e-5}


class JointInterestRecommender(InterestRecommender):
    """The interest model with its text encoder fine-tuned end to end.

    The positional arguments and ``eval_batch_size`` / ``name`` are :class:`InterestRecommender`'s.

    Args:
        config: interest-model settings (``use_text`` must stay True).
        features: :class:`TextFeatures` of the training rows, *with* ``texts``; their
            ``review_vectors`` (from the same encoder, frozen) give the initial item vectors.
        task: "rating" or "ranking".
        train_config: optimisation settings of the interest model (its ``lr``).
        encoder: "default" (the packaged MiniLM), a local folder or a Hugging Face id. It must be
            the encoder that produced ``features.review_vectors``.
        finetune: what of the encoder trains: "top-layers" (``train_layers`` whole blocks),
            "lora" (adapters, see ``lora``) or "frozen" (nothing).
        train_layers: with "top-layers": how many top transformer blocks to fine-tune; None trains
            all of them.
        lora: with "lora": rank, alpha, dropout, target modules and adapted blocks (default
            :class:`LoraSettings`: rank 8, alpha 16, dropout 0.1, query and value of every block).
        encoder_lr: learning rate of the encoder's parameters; None: 2e-5 for "top-layers" (the
            article's), 5e-4 for "lora".
        max_length: token limit per review while fine-tuning.
        text_batch_size: texts per encoder pass when refreshing the review vectors.
        cache_frozen_layers: keep the output of the frozen lower blocks for every training text
            so that training runs only the trainable blocks (used when ``train_layers`` leaves
            some blocks frozen).
        frozen_cache_max_bytes: the most memory that cache may take (host memory, float32).
        name: label used in result tables.
    """

    name = "interest+joint"
    artifact_kind = "interest+joint"

    def __init__(
        self,
        *interest_args: Any,
        encoder: str = "default",
        finetune: str = "top-layers",
        train_layers: int | None = 1,
        lora: LoraSettings | None = None,
        encoder_lr: float | None = None,
        max_length: int = 64,
        text_batch_size: int = 64,
        cache_frozen_layers: bool = True,
        frozen_cache_max_bytes: int = 4 * 1024**3,
        **interest_options: Any,
    ) -> None:
        super().__init__(*interest_args, **interest_options)
        if not self.config.use_text:
            raise ValueError("JointInterestRecommender fine-tunes the text encoder; it needs config.use_text=True")
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        if train_layers is not None and train_layers < 0:
            raise ValueError(f"train_layers must be None or >= 0, got {train_layers}")
        if finetune == "lora":
            require_peft()  # fail here, not after the data are prepared
        encoder_lr = DEFAULT_ENCODER_LR[finetune] if encoder_lr is None else encoder_lr
        if not encoder_lr > 0 or max_length < 8 or text_batch_size < 1:
            raise ValueError("encoder_lr must be > 0, max_length >= 8 and text_batch_size >= 1")
        self.encoder = encoder
        self.finetune = finetune
        self.train_layers = train_layers
        self.lora = lora if lora is not None else LoraSettings()
        self.encoder_lr = encoder_lr
        self.max_length = max_length
        self.text_batch_size = text_batch_size
        self.cache_frozen_layers = cache_frozen_layers
        self.frozen_cache_max_bytes = frozen_cache_max_bytes
        self._stale = False
        self._prefix: torch.Tensor | None = None  # (n, L, D) input of the first trainable block
        self._cache_pending = False
        self.frozen_cache_status_ = "not built"
        self.n_encoder_trainable_ = 0

    def fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None = None, features: TextFeatures | None = None
    ) -> JointInterestRecommender:
        """Fine-tune the encoder and train the interest model on ``train`` (``val``: early stopping)."""
        feats = features if features is not None else self.features
        if feats is None or feats.texts is None:
            raise ValueError("JointInterestRecommender needs TextFeatures with texts (the training review texts)")
        super().fit(train, val, features)
        if self.finetune != "frozen":
            self._refresh_review_vectors()
        return self

    # ------------------------------------------------------------------ model

    def _build(self, train: pd.DataFrame) -> nn.Module:
        from textinterest.text.features import BertFeatureExtractor

        module = super()._build(train)
        self._prefix, self._cache_pending, self.n_encoder_trainable_ = None, False, 0
        if self.finetune == "frozen":
            self.frozen_cache_status_ = "not used: the encoder is frozen and not run"
            return module
        extractor = BertFeatureExtractor(self.encoder, device=str(self.device), use_cache=False, progress=False)
        encoder = extractor.model.float()  # fp32 master weights; AMP casts on the fly on a GPU
        if encoder.config.hidden_size != self.config.text_dim:
            raise ValueError(
                f"encoder {self.encoder!r} has hidden size {encoder.config.hidden_size}, but the review vectors "
                f"have {self.config.text_dim}: pass the encoder that produced features.review_vectors"
            )
        if self.finetune == "lora":
            encoder = add_lora_adapters(encoder, self.lora)
            self.n_encoder_trainable_ = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
        else:
            self.n_encoder_trainable_ = freeze_all_but_last_layers(encoder, self.train_layers)
        module.text_encoder = encoder  # registered as a sub-module: trained and moved with the model
        module.optimizer_groups = partial(joint_param_groups, module, encoder_lr=self.encoder_lr)
        tok = extractor.tokenizer
        enc = tok(
            list(self._texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        self._ids, self._att = enc["input_ids"], enc["attention_mask"]  # (n, L) in sorted-step order
        self._lengths = self._att.sum(1)
        # built at the first training step: a model loaded to score only never runs the frozen blocks
        self._cache_pending = True
        self.frozen_cache_status_ = "not built"
        return module

    # ------------------------------------------------------------------ encoder passes

    def _build_frozen_cache(self, encoder: nn.Module) -> str:
        """Run the frozen blocks once over every text; return what happened, in words."""
        if not self.cache_frozen_layers:
            return "off (cache_frozen_layers=False)"
        base = getattr(encoder, "base_model", encoder)
        try:
            blocks_path = _transformer_layers_path(base)
        except ValueError as exc:
            return f"skipped: {exc}"
        blocks = base.get_submodule(blocks_path)
        frozen = _frozen_prefix(blocks)
        if frozen == 0:
            return "not used: every block trains"
        if any(p.requires_grad for p in getattr(base, "embeddings", nn.Module()).parameters()):
            return "not used: the embeddings train"
        n, width = self._ids.shape
        needed = n * width * encoder.config.hidden_size * 4
        if needed > self.frozen_cache_max_bytes:
            return f"skipped: it would take {needed / 2**20:,.0f} MiB, over frozen_cache_max_bytes"
        if not isinstance(getattr(base, "embeddings", None), nn.Module):
            return f"skipped: {type(base).__name__} has no 'embeddings' module to bypass"
        parent_path, _, attr = blocks_path.rpartition(".")
        # where the shortcut swaps modules: (model, blocks' parent, attribute, all blocks, top blocks)
        self._shortcut = (base, base.get_submodule(parent_path), attr, blocks, nn.ModuleList(list(blocks)[frozen:]))
        was_training = encoder.training
        encoder.eval()
        try:
            prefix = torch.zeros(n, width, encoder.config.hidden_size)
            order = np.argsort(self._lengths.numpy(), kind="stable")
            with torch.no_grad():
                for s in range(0, n, self.text_batch_size):
                    idx = torch.as_tensor(order[s : s + self.text_batch_size])
                    w = int(self._lengths[idx].max())
                    out = encoder(
                        input_ids=self._ids[idx, :w].to(self.device),
                        attention_mask=self._att[idx, :w].to(self.device),
                        output_hidden_states=True,
                    )
                    prefix[idx, :w] = out.hidden_states[frozen].float().cpu()
                # the shortcut must give what the whole encoder gives
                probe = torch.as_tensor(order[-min(4, n) :])
                self._prefix = None
                full = self._encode_with(encoder, probe)
                self._prefix = prefix
                short = self._encode_with(encoder, probe)
            gap = float((full - short).abs().max())
            if not gap <= 1e-3 * max(1.0, float(full.abs().max())):
                self._prefix = None
                return f"skipped: the top blocks alone differ from the full encoder by {gap:.2g}"
        except Exception as exc:  # noqa: BLE001 - an unexpected layout falls back to full passes
            self._prefix = None
            return f"skipped: {type(exc).__name__}: {exc}"
        finally:
            encoder.train(was_training)
        return f"on: {frozen} frozen blocks run once for {n:,} texts ({needed / 2**20:,.0f} MiB)"

    @contextlib.contextmanager
    def _top_blocks_only(self) -> Iterator[None]:
        """Temporarily make the encoder start at its first trainable block (inputs_embeds = its input)."""
        base, parent, attr, blocks, top = self._shortcut
        embeddings = base.embeddings
        base.embeddings = _PassThrough()
        setattr(parent, attr, top)
        try:
            yield
        finally:
            base.embeddings = embeddings
            setattr(parent, attr, blocks)

    def _encode_with(self, encoder: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        """Mean-pooled encoder output for sorted-step rows (U,) -> (U, D) float32."""
        rows = rows.cpu()
        width = int(self._lengths[rows].max()) if len(rows) else 1  # dynamic padding
        att = self._att[rows, :width].to(self.device)
        if self._prefix is not None:
            start = self._prefix[rows, :width].to(self.device)
            with self._top_blocks_only():
                hidden = encoder(inputs_embeds=start, attention_mask=att).last_hidden_state
        else:
            ids = self._ids[rows, :width].to(self.device)
            hidden = encoder(input_ids=ids, attention_mask=att).last_hidden_state  # (U, L, D)
        mask = att.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float()

    def _encode(self, module: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        return self._encode_with(module.text_encoder, rows)

    def _refresh_review_vectors(self) -> None:
        """Re-embed every training text with the current encoder (no gradient)."""
        module = self.module
        was_training = module.training
        module.eval()
        out = np.empty_like(self._review)
        order = np.argsort(self._lengths.numpy(), kind="stable")  # similar lengths share a batch
        with torch.no_grad():
            for s in range(0, len(order), self.text_batch_size):
                idx = order[s : s + self.text_batch_size]
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    out[idx] = self._encode(module, torch.as_tensor(idx)).cpu().numpy()
        self._review = out
        self._stale = False
        module.train(was_training)

    # ------------------------------------------------------------------ training hooks

    def history_batch(self, windows: np.ndarray) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray]:
        batch, pos, mask, target = super().history_batch(windows)
        batch["rows"] = torch.as_tensor(np.where(mask, pos, -1))  # (B, T) sorted-step row, -1 = padding
        return batch, pos, mask, target

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.finetune == "frozen":
            return super()._loss(module, batch)
        if self._cache_pending:
            self._cache_pending = False
            with torch.autocast(self.device.type, enabled=False):  # the cache is checked in fp32
                self.frozen_cache_status_ = self._build_frozen_cache(module.text_encoder)
        rows = batch["rows"]  # (B, T)
        valid = rows >= 0
        unique, inverse = torch.unique(rows[valid], return_inverse=True)
        vectors = self._encode(module, unique)  # (U, D), with gradient into the trainable layers
        review = torch.zeros(*rows.shape, vectors.shape[1], device=vectors.device, dtype=vectors.dtype)
        review[valid] = vectors[inverse]
        self._stale = True
        return super()._loss(module, {**batch, "review": review})

    def final_state(
        self, users: np.ndarray, times: np.ndarray | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self._stale:
            self._refresh_review_vectors()
        return super().final_state(users, times)

    def explain(self, user: Any, item: Any, top_n: int = 3) -> dict[str, Any]:
        if self._stale:
            self._refresh_review_vectors()
        return super().explain(user, item, top_n)

    # ------------------------------------------------------------------ saving

    def artifact_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What :func:`~textinterest.models.artifact.save_recommender` writes for this model.

        Returns:
            The module's weights, of the encoder only those that trained (the top blocks or the
            LoRA adapters: the frozen ones come back from the encoder reference), and the settings
            that rebuild the model (stored in the manifest under ``"own_settings"``).
        """
        self.check_fitted()
        if self._stale:
            self._refresh_review_vectors()  # the saved review vectors are those of the tuned encoder
        frozen = self._frozen_encoder_keys()
        state = {k: v for k, v in self.module.state_dict().items() if k not in frozen}
        settings = {
            "encoder": self.encoder,
            "finetune": self.finetune,
            "train_layers": self.train_layers,
            "lora": dataclasses.asdict(self.lora),
            "encoder_lr": self.encoder_lr,
            "max_length": self.max_length,
            "text_batch_size": self.text_batch_size,
            "cache_frozen_layers": self.cache_frozen_layers,
            "frozen_cache_max_bytes": self.frozen_cache_max_bytes,
        }
        return state, settings

    @classmethod
    def from_saved(cls, settings: dict[str, Any], **common: Any) -> JointInterestRecommender:
        """An unfitted model with the configuration and the fine-tuning settings :meth:`artifact_state` saved."""
        own = common.pop("own_settings", None)
        if own is None:
            raise ValueError("a saved joint model needs its fine-tuning settings ('own_settings')")
        options = {**own, "lora": LoraSettings(**own["lora"])}
        return cls(InterestConfig(**settings), **common, **options)

    def use_text_encoder(self, encoder: Any) -> None:
        """Rebuild the fine-tuned encoder from the checked one (its frozen weights are not in the saved file)."""
        self.encoder = encoder.model_name

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`artifact_state` saved into the freshly built module.

        Raises:
            RuntimeError: the state lacks a trained weight, or holds one the module does not have.
        """
        frozen = self._frozen_encoder_keys()
        missing, unexpected = self.module.load_state_dict(state, strict=False)
        lacking = sorted(set(missing) - frozen)
        if lacking or unexpected:
            raise RuntimeError(
                f"saved weights do not fit the model: missing {lacking[:5]}, unexpected {sorted(unexpected)[:5]}"
            )

    def _frozen_encoder_keys(self) -> set[str]:
        """State-dict keys of the encoder's weights that do not train (they equal the reference encoder's)."""
        encoder = getattr(self.module, "text_encoder", None)
        if encoder is None:
            return set()
        trained = {name for name, p in encoder.named_parameters() if p.requires_grad}
        return {f"text_encoder.{k}" for k in encoder.state_dict() if k not in trained}

    def review_vectors(self) -> np.ndarray:
        """Current (tuned) vectors of the training reviews, aligned with the training frame's rows."""
        self.check_fitted()
        if self._stale:
            self._refresh_review_vectors()
        out = np.empty_like(self._review)
        out[self.seq.rows] = self._review
        return out


def _frozen_prefix(blocks: nn.ModuleList) -> int:
    """How many bottom blocks have no trainable parameter (they give the same output at every step)."""
    for i, block in enumerate(blocks):
        if any(p.requires_grad for p in block.parameters()):
            return i
    return len(blocks)


class _PassThrough(nn.Module):
    """Stands in for the embedding layer: hands ``inputs_embeds`` (a frozen block's output) on."""

    def forward(self, input_ids: Any = None, inputs_embeds: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if inputs_embeds is None:
            raise RuntimeError("the frozen-block cache passes hidden states as inputs_embeds")
        return inputs_embeds


def joint_param_groups(module: nn.Module, lr: float, *, encoder_lr: float) -> list[dict[str, Any]]:
    """Optimizer groups: the encoder at its own (small) learning rate, the rest at ``lr``."""
    encoder = getattr(module, "text_encoder", None)
    if encoder is None:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": lr}]
    encoder_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in encoder_ids]
    tuned = [p for p in encoder.parameters() if p.requires_grad]
    groups = [{"params": rest, "lr": lr}]
    if tuned:
        groups.append({"params": tuned, "lr": encoder_lr})
    return groups
