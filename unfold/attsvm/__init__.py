"""Attention as an SVM (Tarzanagh, Li, Thrampoulidis, Oymak, arXiv 2308.16898 / 2306.13596).

Training the attention weights of ``f_W(X, z) = vᵀXᵀ softmax(XWz)`` by (normalized) gradient
descent on the logistic loss converges in direction to the solution of the Att-SVM that separates
the selected token of each sequence from the others (Frobenius norm for ``W``, nuclear norm for
``W = KQᵀ``).  Modules: :mod:`.data` (random datasets), :mod:`.model` (the loss as an unfold
Energy, plain-torch reference), :mod:`.svm` (the Att-SVM by cvxpy/scipy and its KKT check),
:mod:`.train` (normalized GD), :mod:`.dynamics` (the same dynamics through ``unfold.steps``),
:mod:`.experiment` (the paper's local-convergence experiment).
"""

from .data import AttDataset, random_datasets
from .dynamics import dataset_energy, dataset_inputs, training_step, unrolled_training
from .experiment import Experiment, run_experiment, solve_targets
from .model import attention_loss, attention_loss_kq, attention_probs, reference_loss, reference_outputs
from .svm import KKTReport, SVMSolution, constraint_matrices, kkt_report, solve_att_svm, solve_att_svm_slsqp
from .train import NormalizedGradient, TrainRun, loss_and_grad_fn, train

__all__ = [
    "AttDataset", "random_datasets", "dataset_energy", "dataset_inputs", "training_step",
    "unrolled_training", "Experiment", "run_experiment", "solve_targets", "attention_loss",
    "attention_loss_kq", "attention_probs", "reference_loss", "reference_outputs", "KKTReport",
    "SVMSolution", "constraint_matrices", "kkt_report", "solve_att_svm", "solve_att_svm_slsqp",
    "NormalizedGradient", "TrainRun", "loss_and_grad_fn", "train",
]
