"""Knowledge distillation: ``kd`` (teacher fine-tuned with ce) and ``cmi_max_kd`` (maximum-CMI teacher).

Student loss, with student logits z_s, teacher logits z_t, temperature T and weight alpha:

    (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

(Hinton et al. 2015; the T^2 keeps the gradient scale of the soft term independent of T).
The teacher's logits come from a cache: the teacher trial computes them once on the training
set, in eval mode, and the student reads them by example id, so a student step costs what a
``ce`` step costs. The teacher trials are planned by the harness from ``teacher_stages``:

* ``cmi_max_kd``: the maximum-CMI recipe of Ye et al. (ICLR 2024): the teacher model is
  fine-tuned with ``ce``, then further for ``teacher_epochs`` epochs with ``cmi_max`` (weight
  ``teacher_lambda``), its class centroids computed exactly from the fine-tuned teacher before
  that stage starts;
* ``kd``: the matched control. The same ``ce`` teacher is fine-tuned further for the same
  ``teacher_epochs`` with a fresh warm-up and schedule, with plain ``ce`` (``cmi_max`` with
  lambda = 0 is exactly that loss). Both students' teachers then differ only in the CMI term,
  not in how long they trained. (``teacher_epochs=0`` gives the classic kd teacher, trained
  with ``ce`` only.) The first ``ce`` stage is one trial, shared by both.
"""

from __future__ import annotations

from harness import HParam, LossOutput, Objective, Outputs, TeacherStage, hookimpl


class KD(Objective):
    name = "kd"
    description = "Distillation from a ce-fine-tuned teacher: (1-a)*CE + a*T^2*KL(p_t^T || p_s^T)"
    hparams = (
        HParam("alpha", 0.5, "weight of the distillation term; 0 gives plain cross-entropy", minimum=0.0, maximum=1.0),
        HParam("temperature", 2.0, "softmax temperature T of teacher and student", minimum=1e-3),
        HParam(
            "teacher_epochs",
            1,
            "epochs of the teacher's second stage (ce here, matching cmi_max_kd's cmi_max stage); 0: none",
            minimum=0,
        ),
    )
    needs = frozenset({"logits", "teacher_logits"})
    compare_to = ("ce",)

    @classmethod
    def teacher_stages(cls, hp: dict) -> list[TeacherStage]:
        more = [TeacherStage("ce", {}, hp["teacher_epochs"])] if hp["teacher_epochs"] else []
        return [TeacherStage("ce"), *more]

    def loss(self, out: Outputs) -> LossOutput:
        import torch.nn.functional as F  # here, so listing plugins does not load torch

        ce = F.cross_entropy(out.logits, out.labels)
        alpha, t = self.hp["alpha"], self.hp["temperature"]
        if not alpha:  # exactly cross-entropy
            return LossOutput(ce, {"ce": ce})
        soft = (
            F.kl_div(
                F.log_softmax(out.logits / t, dim=-1),
                F.log_softmax(out.teacher_logits / t, dim=-1),
                log_target=True,
                reduction="batchmean",
            )
            * t**2
        )
        return LossOutput((1 - alpha) * ce + alpha * soft, {"ce": ce, "kd": soft})


class CMIMaxKD(KD):
    name = "cmi_max_kd"
    description = "Distillation from a maximum-CMI teacher (ce, then cmi_max fine-tuning), Ye et al. 2024"
    hparams = (  # type: ignore[assignment]  # KD's first two and the teacher's
        *KD.hparams[:2],
        HParam("teacher_lambda", 0.1, "cmi_max weight lambda of the teacher's second stage", minimum=0.0),
        HParam("teacher_epochs", 1, "epochs of the teacher's cmi_max stage (kd's control stage: the same)", minimum=1),
    )
    compare_to = ("ce", "kd")  # type: ignore[assignment]  # KD's is ("ce",)
    cmi_target = ("teacher", 1)  # its teacher's dev CMI above kd's teacher's

    @classmethod
    def teacher_stages(cls, hp: dict) -> list[TeacherStage]:
        cmi = {"lambda": hp["teacher_lambda"], "centroids": "exact"}
        return [TeacherStage("ce"), TeacherStage("cmi_max", cmi, hp["teacher_epochs"])]


@hookimpl
def harness_objectives():
    return [KD, CMIMaxKD]
