"""``adversary-critic``: robust training against a multiclass adversary critic (Sec. 4-5).

The classifier f and the critic D have their own Adam optimizers and are updated alternately on
every batch. Both phases (plain pretraining, then adversarial training) run in the shared loop
``benchlab.fit`` with the recipe's optimizer, rate, batch size and schedule for f: the per-batch
objective updates the critic first and returns f's loss, and the epoch hook steps the critic's
schedule. Only the classifier is cached (the critic is a training-time device, never used at test
time).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import (
    Context,
    Fitted,
    Metric,
    Param,
    Recipe,
    TensorData,
    TorchClassifier,
    TrainingDefense,
    Victim,
    fit,
    make_optimizer,
)

from .critic import AdversaryCritic, critic_objective, fooling_objective
from .mapping import ClassConfidence, adversarial_mapping, cycle_consistency

# Adam's beta1 for both players (Sec. 5: "momentum beta1 = 0.5").
BETAS = (0.5, 0.999)


class AdversaryCriticDefense(TrainingDefense):
    """Adversary-critic training: f's high-confidence adversarial examples must fool a class-wise critic D.

    Reference: Matyasko & Chau, "Improved Network Robustness with Adversary Critic", NeurIPS 2018,
    https://arxiv.org/abs/1810.12576. Per batch: the critic step minimises eq. 4 (+ gradient penalty
    at real and adversarial inputs); the classifier step minimises eq. 5, NLL + lam * -log D_k(A_f(x; k)),
    plus lam_rec times the cycle-consistency of eq. 6, back-propagating through the differentiable
    attack A_f (5 steps, target = closest boundary, C = running mean class confidence). One plain
    epoch of pretraining first; Adam (beta1 0.5), lr 5e-4 (f) / 1e-3 (D), both halved every 40% of
    the epochs (paper: every 40 of 100). lam is 0.5 for the MLP and 0.1 for LeNet-5 in the paper.
    These are f's recipe here; a matrix's ``[recipe]`` overrides apply on top, as for every defense.
    """

    name = "adversary-critic"
    frameworks = ("torch",)
    declared_metrics = (
        Metric("ac_train_flip_rate", False, "last epoch: share of training inputs whose prediction the "
                                            "training attack A_f changed"),
        Metric("ac_train_adv_l2", True, "last epoch: mean l2 norm of A_f's perturbation over those",
               fraction=False),
        Metric("ac_train_cycle", False, "last epoch: mean cycle-consistency error ||A_f(A_f(x, t), s) - x||^2",
               fraction=False),
        Metric("ac_critic_acc_real", True, "last epoch: the critic's accuracy on natural inputs"),
        Metric("ac_critic_acc_adv", True, "last epoch: the critic's accuracy on A_f's adversarial inputs"),
    )
    version = "2"  # 2: the training mapping no longer projects onto [0, 1] (as the authors' code)
    params = (
        Param("lam", float, 0.5, "lambda: weight of the critic term of eq. 5 (paper: 0.5 MLP, 0.1 LeNet-5)",
              low=0.0),
        Param("lam_rec", float, 1e-2, "lambda_rec: weight of the cycle-consistency term (eq. 6)", low=0.0),
        Param("lam_grad", float, 10.0, "weight of the critic's gradient-norm penalty", low=0.0),
        Param("attack_steps", int, 5, "iterations of the training attack A_f", low=1),
        Param("overshoot", float, 0.05, "training steps of A_f are scaled by 1 + overshoot (authors' code)",
              low=0.0),
        Param("lr", float, 5e-4, "classifier Adam learning rate", low=0.0),
        Param("critic_lr", float, 1e-3, "critic Adam learning rate", low=0.0),
        Param("critic_width", int, 1200, "units in each of the critic's two hidden layers", low=1),
        Param("batch_size", int, 100, "batch size", low=1),
        Param("pretrain_epochs", int, 1, "plain NLL epochs before the critic joins", low=0),
        Param("epochs", int, None, "adversarial epochs (None: the victim recipe / matrix epochs)", low=0),
    )
    test_spec = "adversary-critic:critic_width=32,batch_size=32,pretrain_epochs=5,epochs=5"

    # ---- training ----------------------------------------------------------------------------
    def recipe(self, victim: Victim, ctx: Context) -> Recipe:
        """The paper's optimizer for f (Adam, beta1 0.5, lr, batch, step decay), then the matrix's overrides."""
        paper = victim.recipe.override(optimizer="adam", beta1=BETAS[0], lr=self.p.lr, batch_size=self.p.batch_size,
                                       schedule="step")
        return paper.override(**ctx.recipe_overrides).override(epochs=self.p.epochs)

    def fit(self, victim: Victim, train: TensorData, ctx: Context) -> Fitted:
        torch.manual_seed(ctx.seed)
        info = ctx.info
        model = self.build_model(victim, ctx).to(ctx.device)
        critic = AdversaryCritic(info.input_shape, info.num_classes, self.p.critic_width).to(ctx.device)
        train = train.to(ctx.device)
        monitor = ctx.monitor.to(ctx.device) if ctx.monitor is not None else None
        recipe = self.recipe(victim, ctx)
        opt_f = self.optimizer(model, recipe, ctx) or make_optimizer(model.parameters(), recipe)
        opt_d = torch.optim.Adam(critic.parameters(), lr=self.p.critic_lr, betas=BETAS)
        # Pretraining shares the classifier's optimizer; no schedule (the schedule starts after it).
        pretrain = recipe.override(epochs=self.p.pretrain_epochs, schedule="none")
        history = fit(model, train, pretrain, seed=ctx.seed, monitor=monitor, optimizer=opt_f,
                      progress=ctx.progress, desc=f"{self.spec}/pretrain")
        confidence = ClassConfidence.estimate(model, train, info.num_classes)
        # The critic's rate is halved on f's schedule: every 40% of the adversarial epochs.
        critic_schedule = torch.optim.lr_scheduler.StepLR(opt_d, max(1, round(0.4 * recipe.epochs)), gamma=0.5)
        totals: dict[str, float] = {}
        last: dict[str, float] = {}

        def objective(model, x, y):
            loss, logits, stats = self.critic_step_and_loss(model, critic, opt_d, confidence, x, y)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
            return loss, logits

        def end_of_epoch(epoch: int) -> None:
            critic_schedule.step()
            last.clear()
            last.update(totals)
            totals.clear()

        adversarial = fit(model, train, recipe, seed=ctx.seed * 1_000_003 + 613, monitor=monitor,
                          objective=objective, optimizer=opt_f, progress=ctx.progress, desc=self.spec,
                          on_epoch_end=end_of_epoch)
        for name in ("train_acc", "test_acc", "loss"):
            getattr(history, name).extend(getattr(adversarial, name))
        return Fitted(TorchClassifier(model), history, self._metrics(last, len(train)))

    def critic_step_and_loss(self, model, critic, opt_d, confidence: ClassConfidence, x, y):
        """One critic update (eq. 4), then f's loss (eq. 5 + lam_rec * eq. 6), its logits and statistics.

        The adversarial examples are computed once, differentiably: the critic trains on their
        values (detached) and f's loss back-propagates through them. The authors' code computes
        them twice with the same parameters, which gives the same values.
        """
        steps, overshoot = self.p.attack_steps, self.p.overshoot
        logits = model(x)
        source = logits.detach().argmax(1)
        confidence.update(logits.detach())
        x_adv, _ = adversarial_mapping(model, x, source, confidence, steps, overshoot, differentiable=True)
        with torch.no_grad():
            adv_pred = model(x_adv).argmax(1)
        flipped = adv_pred != source  # only attacks that changed the prediction are adversarial examples
        # Critic step on the current adversarial examples.
        d_loss, parts = critic_objective(critic, x, y, x_adv[flipped].detach(), adv_pred[flipped],
                                         self.p.lam_grad)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # f's loss against the updated critic; the graph records no gradients for the critic's parameters.
        critic.requires_grad_(False)
        nll = F.cross_entropy(logits, y)
        fool = fooling_objective(critic, x_adv[flipped], adv_pred[flipped])
        source_confidence = logits.detach().softmax(1).amax(1)
        cycle = cycle_consistency(model, x[flipped], x_adv[flipped], source[flipped],
                                  source_confidence[flipped], steps, overshoot)
        loss = nll + self.p.lam * fool + self.p.lam_rec * cycle
        critic.requires_grad_(True)
        hits = flipped.sum().item()
        stats = {"flipped": hits, "adv_l2": (x_adv - x).detach().flatten(1).norm(dim=1)[flipped].sum().item(),
                 "cycle": cycle.item() * hits, "critic_real": parts["real_correct"].item(),
                 "critic_adv": parts["adv_correct"].item()}
        return loss, logits, stats

    def step(self, model, critic, opt_f, opt_d, confidence: ClassConfidence, x, y) -> dict:
        """One critic update then one classifier update (what ``fit`` does per batch)."""
        loss, logits, stats = self.critic_step_and_loss(model, critic, opt_d, confidence, x, y)
        opt_f.zero_grad(set_to_none=True)
        loss.backward()
        opt_f.step()
        return {"correct": (logits.detach().argmax(1) == y).sum().item(), "loss": loss.item() * len(y), **stats}

    @staticmethod
    def _metrics(totals: dict, n: int) -> dict:
        """Last-epoch training diagnostics (documented in the README)."""
        if not totals:
            return {}
        flipped = max(totals["flipped"], 1)
        return {"ac_train_flip_rate": totals["flipped"] / n, "ac_train_adv_l2": totals["adv_l2"] / flipped,
                "ac_train_cycle": totals["cycle"] / flipped, "ac_critic_acc_real": totals["critic_real"] / n,
                "ac_critic_acc_adv": totals["critic_adv"] / flipped}
