"""What Megatron's training_log prints, and the numbers that go into it.

The line format follows megatron/training/training.py training_log() at core_r0.6.0 exactly
(formats.md (a)); the numbers are deterministic functions of the iteration so that a resumed
run continues the same curve.
"""
import math
from argparse import Namespace
from collections.abc import Iterable, Mapping
from datetime import datetime

from . import version

# --- simulated training signals ------------------------------------------------------------------------

def lm_loss(iteration: int, finetune: bool = False) -> float:
    """Decreasing loss with a small deterministic wobble; fine-tuning starts lower and flattens sooner."""
    wobble = 0.015 * math.sin(iteration * 1.7) + 0.01 * math.cos(iteration * 0.31)
    if finetune:
        return 1.1 + 1.2 * math.exp(-iteration / 60.0) + wobble
    return 2.0 + 8.0 * math.exp(-iteration / 40.0) + wobble


def grad_norm(iteration: int) -> float:
    return 0.8 + 6.0 * math.exp(-iteration / 25.0) + 0.05 * abs(math.sin(iteration * 0.9))


def validation_loss(iteration: int, finetune: bool = False) -> float:
    return lm_loss(iteration, finetune) + 0.05


class LRSchedule:
    """megatron.core.optimizer_param_scheduler.OptimizerParamScheduler.get_lr (steps counted in samples)."""

    max_lr: float
    min_lr: float
    init_lr: float
    style: str  # --lr-decay-style: constant | linear | cosine | inverse-square-root
    decay_steps: float  # in samples
    warmup_steps: float  # in samples

    def __init__(self, args: Namespace) -> None:
        gbs = args.global_batch_size
        self.max_lr = args.lr if args.lr is not None else 0.0
        self.min_lr = args.min_lr or 0.0
        self.init_lr = getattr(args, 'lr_warmup_init', 0.0) or 0.0
        self.style = args.lr_decay_style
        train_iters = args.train_iters or 0
        decay_iters = args.lr_decay_iters if args.lr_decay_iters is not None else train_iters
        self.decay_steps = decay_iters * gbs
        if args.lr_warmup_fraction is not None:
            self.warmup_steps = args.lr_warmup_fraction * self.decay_steps
        else:
            self.warmup_steps = (args.lr_warmup_iters or 0) * gbs

    def get_lr(self, num_steps: float) -> float:
        if self.warmup_steps > 0 and num_steps <= self.warmup_steps:
            return self.init_lr + (self.max_lr - self.init_lr) * float(num_steps) / float(self.warmup_steps)
        if self.style == 'constant':
            return self.max_lr
        if num_steps > self.decay_steps:
            return self.min_lr
        if self.style == 'inverse-square-root':
            warmup = max(self.warmup_steps, 1)
            lr = self.max_lr * warmup ** 0.5 / (max(num_steps, 1) ** 0.5)
            return max(self.min_lr, lr)
        span = self.decay_steps - self.warmup_steps
        ratio = (num_steps - self.warmup_steps) / span if span > 0 else 1.0
        ratio = min(max(ratio, 0.0), 1.0)
        if self.style == 'linear':
            coeff = 1.0 - ratio
        else:  # cosine
            coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0)
        return self.min_lr + coeff * (self.max_lr - self.min_lr)


class LossScaler:
    """Megatron's loss scale: constant (bf16/fp32 or --loss-scale) or DynamicGradScaler (fp16)."""

    dynamic: bool  # DynamicGradScaler (fp16 without --loss-scale)
    scale: float
    min_scale: float
    growth_interval: int
    hysteresis: int
    hysteresis_tracker: int
    growth_tracker: int

    def __init__(self, args: Namespace) -> None:
        self.dynamic = bool(args.fp16 and not args.loss_scale)
        if args.fp16 and args.loss_scale:
            self.scale = float(args.loss_scale)
        elif self.dynamic:
            self.scale = float(args.initial_loss_scale)
        else:
            self.scale = 1.0
        self.min_scale = float(args.min_loss_scale)
        self.growth_interval = int(args.loss_scale_window)
        self.hysteresis = int(args.hysteresis)
        self.hysteresis_tracker = self.hysteresis
        self.growth_tracker = 0

    def update(self, found_inf: bool) -> None:
        if not self.dynamic:
            return
        if found_inf:
            self.growth_tracker = 0
            self.hysteresis_tracker -= 1
            if self.hysteresis_tracker <= 0:
                self.scale = max(self.scale * 0.5, self.min_scale)
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                self.growth_tracker = 0
                self.hysteresis_tracker = self.hysteresis
                self.scale = self.scale * 2.0


# --- derived figures ----------------------------------------------------------------------------------------

def num_floating_point_operations(args: Namespace, batch_size: int) -> float:
    """megatron.training.training.num_floating_point_operations."""
    groups = args.num_query_groups if args.group_query_attention and args.num_query_groups else args.num_attention_heads
    routed = 1 if args.num_experts is None else args.moe_router_topk
    gated = 3 / 2 if args.swiglu else 1
    h = args.hidden_size
    return (12 * batch_size * args.seq_length * args.num_layers * h * h * (
        1
        + (args.ffn_hidden_size / h) * routed * gated
        + (groups / args.num_attention_heads)
        + (args.seq_length / h)
        + (args.padded_vocab_size / (2 * args.num_layers * h))))


def parameter_count(args: Namespace) -> int:
    h, layers = args.hidden_size, args.num_layers
    groups = args.num_query_groups if args.group_query_attention and args.num_query_groups else args.num_attention_heads
    kv = args.kv_channels * groups
    attention = h * h + 2 * h * kv + h * h
    mlp = (3 if args.swiglu else 2) * h * args.ffn_hidden_size
    embeddings = args.padded_vocab_size * h * (2 if args.untie_embeddings_and_output_weights else 1)
    return layers * (attention + mlp + 2 * h) + embeddings


def memory_report(args: Namespace, rank: int, iteration: int) -> str:
    """`[Rank N] (after N iterations) memory (MB) | ...` with plausible, deterministic figures."""
    per_rank = parameter_count(args) / (args.tensor_model_parallel_size * args.pipeline_model_parallel_size)
    dp = args.data_parallel_size
    weights_and_grads = per_rank * (2 + 4)
    optimizer = per_rank * 12 / (dp if args.use_distributed_optimizer else 1)
    allocated = (weights_and_grads + optimizer) / 2 ** 20
    activations = (args.micro_batch_size * args.seq_length * args.hidden_size * 34
                   * args.num_layers / args.pipeline_model_parallel_size / args.tensor_model_parallel_size) / 2 ** 20
    max_allocated = allocated + activations
    reserved = math.ceil(max_allocated * 1.06 / 2) * 2.0
    string = '(after {} iterations) memory (MB)'.format(iteration)
    string += ' | allocated: {}'.format(round(allocated, 4) + 0.0)
    string += ' | max allocated: {}'.format(round(max_allocated, 4) + 0.0)
    string += ' | reserved: {}'.format(reserved)
    string += ' | max reserved: {}'.format(reserved)
    return '[Rank {}] {}'.format(rank, string)


# --- the line ----------------------------------------------------------------------------------------------

def dpo_loss(iteration: int) -> float:
    """The sigmoid DPO loss starts at ln 2 (policy == reference) and falls as the margin grows."""
    return 0.6931 * math.exp(-iteration / 80.0) + 0.05 + 0.01 * math.sin(iteration)


def dpo_reward_accuracy(iteration: int) -> float:
    return min(1.0, 0.5 + 0.45 * (1.0 - math.exp(-iteration / 50.0)))


def format_log_line(args: Namespace, iteration: int, consumed_samples: int, elapsed_per_iter_s: float, learning_rate: float,
                    batch_size: int, losses: Mapping[str, float | None], loss_scale: float, grad_norm_value: float | None,
                    skipped: int, nan_count: int, params_norm: float | None = None, num_zeros: float | None = None) -> str:
    """Megatron's training_log string. `losses` maps key -> interval average (None/<=0 are dropped)."""
    log_string = f" [{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}]"
    log_string += ' iteration {:8d}/{:8d} |'.format(iteration, args.train_iters)
    log_string += ' consumed samples: {:12d} |'.format(consumed_samples)
    log_string += ' elapsed time per iteration (ms): {:.1f} |'.format(elapsed_per_iter_s * 1000.0)
    if args.log_throughput:
        throughput = num_floating_point_operations(args, batch_size) / (
            max(elapsed_per_iter_s, 1e-9) * 10 ** 12 * args.world_size)
        log_string += f' throughput per GPU (TFLOP/s/GPU): {throughput:.1f} |'
        if version.current().core_attn_ratio:
            # MindSpeed-LLM 2.3.0 mindspeed_llm/training/training.py#L1074: the share of attention in the FLOPs.
            attn = 12 * args.seq_length * args.hidden_size * args.num_layers
            ratio = 100.0 * attn / max(1, attn + 72 * args.hidden_size ** 2 * args.num_layers)
            log_string += f' core attn ratio (%): {ratio:.1f} |'
    log_string += ' learning rate: {:.6E} |'.format(learning_rate)
    if args.decoupled_lr is not None:
        log_string += ' decoupled learning rate: {:.6E} |'.format(args.decoupled_lr)
    log_string += ' global batch size: {:5d} |'.format(batch_size)
    for key, avg in losses.items():
        # Megatron drops a key whose average is not > 0 -- which includes NaN.
        if avg is not None and avg > 0.0:
            log_string += ' {}: {:.6E} |'.format(key, avg)
    log_string += ' loss scale: {:.1f} |'.format(loss_scale)
    if grad_norm_value is not None:
        log_string += ' grad norm: {:.3f} |'.format(grad_norm_value)
    if num_zeros is not None:
        log_string += ' num zeros: {:.1f} |'.format(num_zeros)
    if params_norm is not None:
        log_string += ' params norm: {:.3f} |'.format(params_norm)
    log_string += ' number of skipped iterations: {:3d} |'.format(skipped)
    log_string += ' number of nan iterations: {:3d} |'.format(nan_count)
    return log_string


def validation_block(prefix: str, loss: float) -> str:
    string = ' validation loss at {} | '.format(prefix)
    string += '{} value: {:.6E} | '.format('lm loss', loss)
    string += '{} PPL: {:.6E} | '.format('lm loss', math.exp(min(20, loss)))
    rule = '-' * (len(string) + 1)
    return '\n'.join([rule, string, rule])


def timers_block(pairs: Iterable[tuple[str, tuple[float, float]]]) -> str:
    """Timers.log with the default 'minmax' option: (min, max) over ranks, in ms."""
    out = '(min, max) time across ranks (ms):'
    for name, (lo, hi) in pairs:
        out += '\n    {}: ({:.2f}, {:.2f})'.format((name + ' ').ljust(48, '.'), lo, hi)
    return out
