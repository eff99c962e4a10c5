"""Self-supervised losses, one per module: pure functions of tensors."""
from mt2.losses.cpsd import TRIVIAL_FLOOR, circle_of_fifths_projection, cpsd_loss
from mt2.losses.masked import RECONSTRUCTION_WEIGHT, masked_prediction_loss, trivial_floors
from mt2.losses.ntxent import gather_with_grad, nt_xent_loss

__all__ = [
    "RECONSTRUCTION_WEIGHT", "TRIVIAL_FLOOR", "circle_of_fifths_projection", "cpsd_loss", "gather_with_grad",
    "masked_prediction_loss", "nt_xent_loss", "trivial_floors",
]
