"""Default batch size, surrogate rate and trial length of DeepConfuse, chosen from the data's size.

The generator learns from the surrogate's trajectory, so a trial must train the surrogate far enough
that its pseudo-update gradient carries class-wise features, whatever the data size:

* batch B = the largest power of two ≤ N / 8, between 16 and 128 (≥ 8 batches per pass, small sets too);
* surrogate rate α_f = 0.05 · B / 128 (linear scaling with the batch);
* trial length = max(1.5 passes over the data, 20 · √(H·W / 64) steps): at least 1.5 epochs, and at
  least 20 steps for 8x8 images, more for larger ones (70 at 28x28), which need more steps to learn;
* generator Adam rate α_g = max(1e-4, 1e-3 · 20 / trial length): the generator moves as far per trial
  as with 20 steps at 1e-3, and never slower than the paper's MNIST rate 1e-4.

On scikit-learn's 8x8 digits (1,347 training images) this gives batches of 128, α_f = 0.05, 20 steps
and α_g = 1e-3; on a 3,000-image 28x28 subset 70 steps and α_g ≈ 2.9e-4; on 60,000 28x28 images 704
steps (1.5 epochs) and α_g = 1e-4.
"""

from __future__ import annotations

import math

MAX_BATCH = 128
MIN_BATCH = 16
BATCHES_PER_PASS = 8
BASE_RATE = 0.05  # α_f at the full batch of 128 (SGD with momentum 0.9)
TRIAL_EPOCHS = 1.5
BASE_STEPS = 20  # surrogate steps per trial for 8x8 images
BASE_PIXELS = 64


def batch_size(n: int) -> int:
    if n < MIN_BATCH * BATCHES_PER_PASS:
        return max(1, min(MIN_BATCH, n))
    return max(MIN_BATCH, min(MAX_BATCH, 2 ** int(math.log2(n / BATCHES_PER_PASS))))


def surrogate_rate(batch: int) -> float:
    return BASE_RATE * min(batch, MAX_BATCH) / MAX_BATCH


def trial_steps(n: int, batch: int, height: int, width: int) -> int:
    passes = math.ceil(TRIAL_EPOCHS * n / batch)
    return max(passes, round(BASE_STEPS * math.sqrt(height * width / BASE_PIXELS)))


BASE_GENERATOR_RATE = 1e-3  # α_g at BASE_STEPS steps per trial
MIN_GENERATOR_RATE = 1e-4  # the paper's MNIST rate


def generator_rate(steps: int) -> float:
    return max(MIN_GENERATOR_RATE, BASE_GENERATOR_RATE * BASE_STEPS / max(1, steps))
