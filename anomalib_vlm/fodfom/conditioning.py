# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 4: a (perturbed) CLIP text embedding mapped back into Stable Diffusion's conditioning.

Official code: ``clip/model.py`` ``encode_text_backward`` multiplies the embedding by the inverse of CLIP's
``text_projection`` (ViT-L/14: square, 768 x 768), which gives a hidden state at the end-of-text position; it
runs the fixed prompt ``"This is a high quality image of"`` through the text tower and final layer norm, and
writes that hidden state into the prompt's end-of-text slot. The whole ``77 x 768`` sequence is SD v1's
cross-attention conditioning ``c`` (``clip_text.py`` ``get_text_prototype_twostage``).

So an unperturbed embedding of the fixed prompt itself comes back as exactly the conditioning the text encoder
produces for that prompt (the round trip the tests check).
"""

from __future__ import annotations

import torch

from anomalib_vlm.fodfom.text_embedding import TransformersClipText

FIXED_PROMPT = "This is a high quality image of"
"""The prompt whose end-of-text slot receives the embedding (``clip_text.py``)."""


class EndOfTextConditioning:
    """Maps CLIP text embeddings ``[N, D]`` to conditioning ``[N, L, H]`` through the end-of-text slot.

    Args:
        text (TransformersClipText): the text tower whose ``text_projection`` is inverted (the generator's own
            text encoder: ViT-L/14 for SD v1).
        prompt (str): the fixed prompt. Defaults to ``"This is a high quality image of"``.
    """

    def __init__(self, text: TransformersClipText, prompt: str = FIXED_PROMPT) -> None:
        self.text = text
        self.prompt = prompt
        ids = text.tokens([prompt])
        self.slot = int(ids[0].argmax())  # the end-of-text id is the largest in CLIP's vocabulary
        self.prompt_states, _ = text.hidden_states([prompt])  # [1, L, H]
        weight = text.model.text_projection.weight.detach().double()  # y = x W^T, W: [D, H]
        # Square for ViT-L/14 (the official code's torch.inverse); a pseudo-inverse covers other towers.
        self.inverse = torch.linalg.inv(weight.T) if weight.shape[0] == weight.shape[1] else torch.linalg.pinv(weight.T)

    def hidden_from_embedding(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The hidden state ``[N, H]`` whose projection is ``embeddings``."""
        return (embeddings.to(self.inverse.device).double() @ self.inverse).float()

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Conditioning ``[N, L, H]``: the fixed prompt's hidden states with the end-of-text slot replaced."""
        states = self.prompt_states.expand(len(embeddings), -1, -1).clone()
        states[:, self.slot] = self.hidden_from_embedding(embeddings).to(states.device)
        return states

    def unconditional(self, count: int = 1) -> torch.Tensor:
        """The empty prompt's hidden states ``[count, L, H]`` (classifier-free guidance, as ``txt2img.py``)."""
        states, _ = self.text.hidden_states([""])
        return states.expand(count, -1, -1)
