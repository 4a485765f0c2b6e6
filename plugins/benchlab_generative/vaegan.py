"""VAE-GAN (Larsen et al. 2016) and its pixel-loss VAE control, as benchlab generative victims.

Reference: Larsen, Sønderby, Larochelle, Winther, "Autoencoding beyond pixels using a learned
similarity metric", ICML 2016, https://arxiv.org/abs/1512.09300 -- the model EvoShift attacks
(its reference [14]). Losses (Sec. 2):

* eq. 3, L_prior = KL(q(z|x) || N(0, I));
* eq. 6, L_llike^Dis_l = -E_q[log N(Dis_l(x) | Dis_l(x~), I)]: half the squared distance between the
  discriminator's l-th layer activations of x and of its reconstruction x~ = Dec(z), z ~ q(z|x);
* eq. 9, L_GAN = log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(Dec(z_p))), z_p ~ N(0, I).

Per-network updates (Algorithm 1): encoder on L_prior + L_llike; decoder on γ·L_llike − L_GAN;
discriminator on −L_GAN (it classifies x as real and both x~ and Dec(z_p) as generated). The decoder's
−L_GAN uses the non-saturating form −log Dis(·) (Goodfellow et al. 2014, Sec. 3).

``vae`` is the same encoder and decoder trained on eq. 3 + a pixel likelihood (Bernoulli, i.e.
binary cross-entropy summed over pixels) with no discriminator: the control that tells apart what
the discriminator does.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import GenerativeHistory, GenerativeVictim, Param, Recipe

from .networks import VAEGANModule


def kl_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. 3: KL(N(mu, sigma^2) || N(0, I)) summed over latent units, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


def _adam(params, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=recipe.lr, betas=(recipe.beta1, 0.999), weight_decay=recipe.weight_decay)


class _EncoderDecoder(GenerativeVictim):
    """Shared parameters, sampling and reconstruction of both models."""

    params = (
        Param("latent", int, 16, "latent dimension of z", low=1),
        Param("width", int, 32, "channels of the first stride-2 stage (doubling per stage)", low=1),
        Param("epochs", int, 40, "training epochs (a matrix [recipe] epochs overrides it)", low=0),
    )
    recipe = Recipe(optimizer="adam", lr=1e-3, beta1=0.5, epochs=40, batch_size=64)
    discriminator = False

    def __init__(self, **values):
        super().__init__(**values)
        self.recipe = type(self).recipe.override(epochs=self.p.epochs)

    def build(self, input_shape, num_classes=0):
        return VAEGANModule(tuple(input_shape), self.p.latent, self.p.width, self.discriminator)

    def reconstruct(self, model, x):
        mu, _ = model.encoder(x)
        return model.decoder(mu)

    def sample(self, model, n, generator):
        z = torch.randn(n, model.latent, generator=generator).to(next(model.parameters()).device)
        return model.decoder(z)

    def fit(self, model, images, recipe, ctx):
        generator = torch.Generator().manual_seed(ctx.seed)
        optimizers = self.optimizers(model, recipe)
        history = GenerativeHistory()
        model.train()
        for _ in ctx.progress.steps(range(recipe.epochs), "training epoch"):
            totals: dict[str, float] = {}
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), recipe.batch_size):
                x = images.index_select(0, order[start : start + recipe.batch_size].to(images.device))
                if len(x) < 2:  # batch normalisation needs two images
                    continue
                losses = self.step(model, x, optimizers, generator)
                for name, value in losses.items():
                    totals[name] = totals.get(name, 0.0) + value.detach() * len(x)
            history.add({name: (value / len(images)).item() for name, value in totals.items()})
        model.eval()
        return history

    def noise(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise drawn on the CPU generator (identical on every device)."""
        return torch.randn(like.shape, generator=generator).to(like.device, like.dtype)


class VAE(_EncoderDecoder):
    """Variational autoencoder with a pixel (Bernoulli) likelihood: VAE-GAN's encoder and decoder, no discriminator.

    Reference: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    https://arxiv.org/abs/1312.6114; the architecture of Larsen et al. 2016 (arXiv:1512.09300),
    whose "plain VAE" baseline it is. Loss: eq. 3 (KL) + binary cross-entropy summed over pixels.
    """

    name = "vae"

    def optimizers(self, model, recipe):
        return [_adam([*model.encoder.parameters(), *model.decoder.parameters()], recipe)]

    def step(self, model, x, optimizers, generator):
        (optimizer,) = optimizers
        mu, logvar = model.encoder(x)
        z = mu + (0.5 * logvar).exp() * self.noise(mu, generator)
        x_tilde = model.decoder(z)
        pixels = F.binary_cross_entropy(x_tilde, x, reduction="sum") / len(x)
        prior = kl_prior(mu, logvar)
        optimizer.zero_grad(set_to_none=True)
        (pixels + prior).backward()
        optimizer.step()
        return {"prior": prior, "pixels": pixels}


class VAEGAN(_EncoderDecoder):
    """VAE-GAN: a VAE whose reconstruction error is measured in the discriminator's features (Larsen et al. 2016).

    Reference: Larsen, Sønderby, Larochelle, Winther, "Autoencoding beyond pixels using a learned
    similarity metric", ICML 2016, https://arxiv.org/abs/1512.09300, eqs. 3, 6, 9 and Algorithm 1:
    encoder on L_prior + L_llike^Dis_l, decoder on γ·L_llike^Dis_l − L_GAN, discriminator on −L_GAN.
    """

    name = "vaegan"
    params = (*_EncoderDecoder.params,
              Param("gamma", float, 0.1, "γ: weight of the feature reconstruction error against the GAN "
                                         "error in the decoder's update", low=0.0))
    discriminator = True

    def optimizers(self, model, recipe):
        return [_adam(model.encoder.parameters(), recipe), _adam(model.decoder.parameters(), recipe),
                _adam(model.discriminator.parameters(), recipe)]

    def step(self, model, x, optimizers, generator):
        enc_opt, dec_opt, dis_opt = optimizers
        dis = model.discriminator
        mu, logvar = model.encoder(x)
        z = mu + (0.5 * logvar).exp() * self.noise(mu, generator)
        x_tilde = model.decoder(z)
        x_p = model.decoder(self.noise(mu, generator))
        real_features, real_logit = dis(x)
        tilde_features, tilde_logit = dis(x_tilde)
        _, p_logit = dis(x_p)
        prior = kl_prior(mu, logvar)
        # Eq. 6 with unit variance: 0.5 * ||Dis_l(x~) - Dis_l(x)||^2 per image (constants dropped).
        llike = 0.5 * (tilde_features - real_features.detach()).pow(2).flatten(1).sum(1).mean()
        ones = torch.ones_like(tilde_logit)
        fooled = (F.binary_cross_entropy_with_logits(tilde_logit, ones)
                  + F.binary_cross_entropy_with_logits(p_logit, ones))
        enc_params, dec_params = list(model.encoder.parameters()), list(model.decoder.parameters())
        enc_grads = torch.autograd.grad(prior + llike, enc_params, retain_graph=True)
        dec_grads = torch.autograd.grad(self.p.gamma * llike + fooled, dec_params)
        # Discriminator: eq. 9 maximised, on the generated images as constants.
        _, real_logit = dis(x)
        _, tilde_logit = dis(x_tilde.detach())
        _, p_logit = dis(x_p.detach())
        gan = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
               + F.binary_cross_entropy_with_logits(tilde_logit, torch.zeros_like(tilde_logit))
               + F.binary_cross_entropy_with_logits(p_logit, torch.zeros_like(p_logit)))
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        gan.backward()
        for params, grads in ((enc_params, enc_grads), (dec_params, dec_grads)):
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad
        for optimizer in (enc_opt, dec_opt, dis_opt):
            optimizer.step()
        return {"prior": prior, "llike": llike, "gan": gan}
