"""pretrain_gpt.py: pretraining, full fine-tuning (--finetune/--is-instruction-dataset) and LoRA.

Sequence (as ModelLink's pretrain() runs it): arguments -> initialize_megatron -> model ->
load_checkpoint -> datasets -> train loop (log / eval / save) -> final save -> final evaluation.
"""
import glob
import math
import os
import re
import signal
import sys
import time

from . import args as argsmod
from . import checkpoint, dpo, env, faults, gang, indexed_dataset, megatron, msl, throughput, tracebacks, version
from . import training_log as tlog

ENTRYPOINT = 'pretrain_gpt.py'
FINAL_SAVE_STACK = tracebacks.PRETRAIN_MAIN + [
    ('modellink/training/training.py', 346, 'pretrain', 'save_checkpoint(iteration, model, optimizer, opt_param_scheduler,')]
END_BARRIER_STACK = tracebacks.PRETRAIN_MAIN + [
    ('modellink/training/training.py', 359, 'pretrain', 'torch.distributed.barrier()')] + tracebacks.BARRIER


def main(argv=None, entrypoint=ENTRYPOINT, trainer=None):
    """`trainer`: posttrain_gpt.py's AutoTrainer (mlemu/posttrain.py), called right after initialize_megatron
    with the Runtime; it returns the kind of post-training ('sft', 'dpo') or ends the process as the source does."""
    args = argsmod.parse(entrypoint, argv)
    start = time.time()
    dist = env.Dist()
    injector = faults.FaultInjector(ENTRYPOINT)
    slowdown = throughput.slowdown_from_env()
    marker_dir = env.marker_dir(args.save or os.getcwd())
    env.line_buffered_stdio()

    # kind@0 faults fire at start-up, before Megatron initializes.
    nan_started = injector.check(0, marker_dir, tracebacks.PRETRAIN_INIT, dist, training=False)

    rt = megatron.initialize(entrypoint, args, tracebacks.PRETRAIN_INIT, dist=dist)
    msl.online_hf2mg(rt, tracebacks.PRETRAIN_INIT)
    args.posttrain_stage = trainer(rt) if trainer else None
    nan_active = agree_on_nan(injector, 0, nan_started)
    rt.print0('time to initialize megatron (seconds): {:.3f}'.format(time.time() - start))
    rt.print_datetime('after megatron is initialized')

    setup_start = time.time()
    build_model(rt)
    msl.check_replica_optimizer(rt, tracebacks.PRETRAIN_MODEL)
    iteration = 0
    loaded = None
    if args.load is not None:
        loaded = checkpoint.load_checkpoint(rt, args.load, tracebacks.PRETRAIN_LOAD, trainable=trainable_per_shard(args))
    if loaded is not None:
        iteration = loaded.iteration
    else:
        args.consumed_train_samples = 0
        args.consumed_valid_samples = 0
    args.iteration = iteration
    setup_ms = (time.time() - setup_start) * 1000
    rt.print_datetime('after model, optimizer, and learning rate scheduler are built')

    data_start = time.time()
    do_valid, do_test = build_datasets(rt)
    data_ms = (time.time() - data_start) * 1000
    if args.posttrain_stage == 'dpo':
        dpo.load_reference(rt)
    rt.print_datetime('after dataloaders are built')
    rt.print0('done with setup ...')
    rt.print_last(tlog.timers_block([('model-and-optimizer-setup', (setup_ms * 0.98, setup_ms)),
                                     ('train/valid/test-data-iterators-setup', (data_ms * 0.97, data_ms))]))

    if not args.skip_train:
        rt.print0('training ...')
        if args.train_iters is None:
            # Megatron derives train_iters from --train-samples; with neither, the loop compares with None.
            if args.train_samples:
                args.train_iters = args.train_samples // args.global_batch_size
            else:
                tracebacks.die(tracebacks.PRETRAIN_TRAIN_STEP[:-1], 'TypeError',
                               "'<' not supported between instances of 'int' and 'NoneType'")
        iteration = 0
        if args.train_iters > 0:
            trainer = Trainer(rt, injector, marker_dir, loaded, nan_active, do_valid, slowdown)
            iteration = trainer.run()
        checkpoint.finalize_async_saves()
        rt.print_datetime('after training is done')
        if args.save and iteration != 0 and iteration % args.save_interval != 0:
            save(rt, iteration, FINAL_SAVE_STACK)
        # Megatron's pretrain ends with maybe_finalize_async_save(blocking=True) (core_r0.8.0 training.py).
        checkpoint.finalize_async_saves()
    else:
        rt.print0('skipping training (--skip-train is on) ...')
        iteration = args.iteration

    # The final evaluations write to TensorBoard only after training (write_to_tensorboard=not
    # args.skip_train, core_r0.6.0 training.py l. 291/298), the test set under the same tags as validation.
    if do_valid:
        evaluate_and_print(rt, f'iteration {iteration} on validation set', iteration, tensorboard=not args.skip_train)
    if do_test:
        evaluate_and_print(rt, f'iteration {iteration} on test set', iteration, tensorboard=not args.skip_train)
    # No node may leave while another still needs it: the other would see a lost peer.
    gang.barrier(END_BARRIER_STACK)
    return 0


def agree_on_nan(injector, iteration, started_here):
    """A NaN loss is the whole job's: Megatron averages the loss over the data-parallel group
    (pretrain_gpt.py loss_func: average_losses_across_data_parallel_group) and the last rank logs it,
    so the rank a nan fault hit tells the others. Every rank knows from MLEMU_FAULTS when to ask."""
    if not injector.nan_scheduled(iteration):
        return started_here
    flags = gang.all_reduce_or(gang.NAN if started_here else 0, tracebacks.PRETRAIN_TRAIN_STEP[:-1] + tracebacks.ALLREDUCE)
    return bool(flags & gang.NAN)


# --- model --------------------------------------------------------------------------------------------------

def is_finetune(args):
    return bool(args.finetune or args.is_instruction_dataset or args.lora_target_modules)


def builds_instruction_dataset(args):
    """ModelLink's pretrain_gpt.py builds the packed instruction dataset with --is-instruction-dataset. MindSpeed-LLM's
    pretrain_gpt.py always uses BlendedMegatronDatasetBuilder (2.3.0 pretrain_gpt.py#L269-293), so <prefix>.idx is
    opened; only posttrain_gpt.py builds instruction or pairwise data (mindspeed_llm/tasks/posttrain/utils.py#L61-67:
    `if args.is_instruction_dataset or args.is_pairwise_dataset`)."""
    if not version.current().is_msl:
        # ModelLink's trainer.py (AutoTrainer, posttrain_stage 'base' or 'dpo') builds it for pairwise data too
        # (modellink/tasks/trainer/utils.py#L52).
        if getattr(args, 'posttrain_stage', None) is not None:
            return bool(args.is_instruction_dataset or args.is_pairwise_dataset)
        return bool(args.is_instruction_dataset)
    if getattr(args, 'posttrain_stage', None) is None:
        return False
    return bool(args.is_instruction_dataset or getattr(args, 'is_pairwise_dataset', False))


def build_model(rt):
    args = rt.args
    rt.print0('building GPT model ...')
    # TransformerConfig.__post_init__ (mcore) / ensure_divisibility (legacy) checks.
    stack = tracebacks.PRETRAIN_MODEL + [
        ('megatron/training/training.py', 397, 'get_model', 'model = model_provider_func('),
        ('pretrain_gpt.py', 59, 'model_provider', 'config = core_transformer_config_from_args(args)'),
        ('megatron/training/arguments.py', 621, 'core_transformer_config_from_args', 'return config_class(**kw_args)'),
        ('<string>', 64, '__init__', None),
        ('megatron/core/transformer/transformer_config.py', 272, '__post_init__', 'raise ValueError('),
    ]
    if args.num_attention_heads % args.tensor_model_parallel_size != 0:
        tracebacks.die(stack, 'ValueError',
                       f'num_attention_heads ({args.num_attention_heads}) must be a multiple of '
                       f'tensor_model_parallel_size ({args.tensor_model_parallel_size}).')
    if args.group_query_attention and args.num_query_groups and \
            args.num_query_groups % args.tensor_model_parallel_size != 0:
        tracebacks.die(stack, 'ValueError',
                       f'num_query_groups ({args.num_query_groups}) must be a multiple of '
                       f'tensor_model_parallel_size ({args.tensor_model_parallel_size}).')
    total = tlog.parameter_count(args)
    per_shard = total // (args.tensor_model_parallel_size * args.pipeline_model_parallel_size)
    tp, pp = args.tensor_model_parallel_size, args.pipeline_model_parallel_size
    cp = getattr(args, 'context_parallel_size', 1) or 1
    for pp_rank in range(pp):
        for tp_rank in range(tp):
            if rt.dist.hosts(checkpoint.owner_rank(tp_rank, pp_rank, 0, tp, args.data_parallel_size, cp)):
                print(' > number of parameters on (tensor, pipeline) model parallel rank ({}, {}): {}'.format(
                    tp_rank, pp_rank, per_shard), flush=True)
    if args.lora_target_modules:
        trainable = lora_parameter_count(args) // (tp * pp)
        rt.print0('trainable params: {:,} || all params: {:,} || trainable%: {}'.format(
            trainable, per_shard + trainable, 100 * trainable / (per_shard + trainable)))
    rt.print0('> learning rate decay style: {}'.format(args.lr_decay_style))


def trainable_per_shard(args):
    """What one model-parallel shard's optimizer holds: the LoRA weights of a LoRA run (ModelLink freezes
    the base model), otherwise every parameter of the shard."""
    shards = args.tensor_model_parallel_size * args.pipeline_model_parallel_size
    if args.lora_target_modules:
        return lora_parameter_count(args) // shards
    return tlog.parameter_count(args) // shards


def lora_parameter_count(args):
    h, ffn, r = args.hidden_size, args.ffn_hidden_size, args.lora_r
    kv = args.kv_channels * (args.num_query_groups if args.group_query_attention and args.num_query_groups
                             else args.num_attention_heads)
    shapes = {'linear_qkv': (h, h + 2 * kv), 'query_key_value': (h, h + 2 * kv), 'linear_proj': (h, h),
              'dense': (h, h), 'linear_fc1': (h, ffn * (2 if args.swiglu else 1)),
              'dense_h_to_4h': (h, ffn * (2 if args.swiglu else 1)), 'linear_fc2': (ffn, h), 'dense_4h_to_h': (ffn, h)}
    per_layer = sum(r * (i + o) for name, (i, o) in shapes.items() if name in args.lora_target_modules)
    return per_layer * args.num_layers


# --- data -----------------------------------------------------------------------------------------------------

def parse_split(split):
    parts = [float(p) for p in re.split(r'[,/]', split) if p.strip()] if split else [969.0, 30.0, 1.0]
    while len(parts) < 3:
        parts.append(0.0)
    total = sum(parts[:3]) or 1.0
    return [p / total for p in parts[:3]]


def data_prefixes(paths):
    """--data-path P  or  --data-path W1 P1 W2 P2 ... (Megatron's get_blend_from_list)."""
    if not paths:
        return []
    if len(paths) == 1:
        return [paths[0]]
    if len(paths) % 2 != 0:
        return list(paths)
    prefixes = []
    for weight, prefix in zip(paths[0::2], paths[1::2], strict=False):
        try:
            float(weight)
        except ValueError:
            return list(paths)
        prefixes.append(prefix)
    return prefixes


def build_datasets(rt):
    """Checks the dataset files ModelLink would open; returns (do_valid, do_test)."""
    args = rt.args
    gbs = args.global_batch_size
    train_iters = args.train_iters or ((args.train_samples or 0) // gbs)
    eval_iters = (train_iters // args.eval_interval + 1) * args.eval_iters if args.eval_interval else 0
    rt.print0('> building train, validation, and test datasets ...')
    rt.print0(' > datasets target sizes (minimum size):')
    rt.print0('    train:      {}'.format(train_iters * gbs))
    rt.print0('    validation: {}'.format(eval_iters * gbs))
    rt.print0('    test:       {}'.format(args.eval_iters * gbs))
    rt.print0('> building train, validation, and test datasets for GPT ...')
    stack = tracebacks.PRETRAIN_DATA
    prefixes = data_prefixes(args.data_path)
    if not prefixes and not getattr(args, 'mock_data', False):
        tracebacks.die(tracebacks.PRETRAIN_MAIN + [('modellink/training/training.py', 324, 'pretrain', None)],
                       'RuntimeError', 'no data loaded, you might give wrong data path.')
    for prefix in prefixes:
        if builds_instruction_dataset(args):
            fields = check_instruction_prefix(prefix, stack)
            if reads_pairs(args):
                check_pairwise_fields(prefix, fields, stack)
        else:
            check_indexed_prefix(prefix, stack + [
                ('pretrain_gpt.py', 233, 'train_valid_test_datasets_provider',
                 'train_ds, valid_ds, test_ds = BlendedMegatronDatasetBuilder('),
                ('megatron/core/datasets/blended_megatron_dataset_builder.py', 131, 'build',
                 'return self._build_blended_dataset_splits()'),
                ('megatron/core/datasets/blended_megatron_dataset_builder.py', 160, '_build_blended_dataset_splits',
                 'return self._build_megatron_dataset_splits(blend[0], split, self.sizes)'),
                ('megatron/core/datasets/blended_megatron_dataset_builder.py', 268, '_build_megatron_dataset_splits',
                 'indexed_dataset = self.build_generic_dataset('),
                ('megatron/core/datasets/indexed_dataset.py', 356, '__init__', 'self.initialize(path_prefix, multimodal, mmap)'),
            ])
    rt.print0('> finished creating GPT datasets ...')
    split = parse_split(args.split)
    do_valid = args.eval_iters > 0 and split[1] > 0
    do_test = args.eval_iters > 0 and split[2] > 0
    return do_valid, do_test


def check_indexed_prefix(prefix, stack):
    idx, bin_ = prefix + '.idx', prefix + '.bin'
    if not os.path.isfile(idx):
        tracebacks.die(stack + [('megatron/core/datasets/indexed_dataset.py', 212, '__init__',
                                 'with open(idx_path, "rb") as stream:')],
                       'FileNotFoundError', tracebacks.errno_enoent(idx))
    try:
        index = indexed_dataset.read_index(idx)
    except indexed_dataset.BadIndex as e:
        tracebacks.die(stack + [('megatron/core/datasets/indexed_dataset.py', 214, '__init__',
                                 'assert header == _INDEX_HEADER, f"bad header, cannot read: {idx_path}"')],
                       'AssertionError', str(e))
    if not os.path.isfile(bin_):
        tracebacks.die(stack + [('megatron/core/datasets/indexed_dataset.py', 382, 'initialize',
                                 'self.bin_buffer_mmap = numpy.memmap(get_bin_path(self.path_prefix), mode="r", order="C")'),
                                ('site:numpy/core/memmap.py', 229, '__new__',
                                 'f_ctx = open(os_fspath(filename), (\'r\' if mode == \'c\' else mode)+\'b\')')],
                       'FileNotFoundError', tracebacks.errno_enoent(bin_))
    return index


def check_instruction_prefix(prefix, stack):
    """modellink get_packed_indexed_dataset: globs <P>_packed_*_document*; nothing found -> IndexError."""
    stack = stack + [
        ('pretrain_gpt.py', 233, 'train_valid_test_datasets_provider',
         'train_ds, valid_ds, test_ds = build_instruction_dataset('),
        ('modellink/tasks/preprocess/decoder_packed_mtf_dataset.py', 78, '_build_train_valid_test_datasets',
         'total_num_of_documents = len(list(packed_indexed_dataset.values())[0])'),
    ]
    fields = set()
    for name in glob.glob(f'{glob.escape(prefix)}_packed_*_document*'):
        match = re.match(re.escape(prefix) + r'_packed_(.*)_document(.*)', name)
        if match:
            fields.add(match.group(1))
    if not fields:
        tracebacks.die(stack, 'IndexError', 'list index out of range')
    for field in sorted(fields):
        check_indexed_prefix(f'{prefix}_packed_{field}_document', stack[:-1])
    return fields


def reads_pairs(args):
    """MindSpeed-LLM's DPO trainer reads pairs; ModelLink's packed dataset does whenever --is-pairwise-dataset is
    given (modellink/tasks/preprocess/decoder_packed_mtf_dataset.py#L167-168: _cut_pairwise_token)."""
    if version.current().is_msl:
        return getattr(args, 'posttrain_stage', None) == 'dpo'
    return getattr(args, 'posttrain_stage', None) is not None and bool(args.is_pairwise_dataset)


def check_pairwise_fields(prefix, fields, stack):
    """DPO reads item['chosen_labels'], item['chosen_input_ids'], item['rejected_input_ids'] from the packed dataset
    (mindspeed_llm/tasks/preprocess/decoder_packed_mtf_dataset.py#L345-348); SFT data (input_ids, attention_mask,
    labels) has none of them. The pairwise handlers write <prefix>_packed_{chosen,rejected}_{input_ids,labels}_document."""
    where = ('mindspeed_llm/tasks/preprocess/decoder_packed_mtf_dataset.py', 345, '__getitem__') \
        if version.current().is_msl else ('modellink/tasks/preprocess/decoder_packed_mtf_dataset.py', 195,
                                          '_cut_pairwise_token')
    if 'chosen_labels' not in fields:
        tracebacks.die(stack + [(*where,
                                 'prompt_length = (item["chosen_labels"] != IGNORE_INDEX).nonzero()[0][0]')],
                       'KeyError', "'chosen_labels'")


# --- training loop -------------------------------------------------------------------------------------------

class Trainer:
    def __init__(self, rt, injector, marker_dir, loaded, nan_active, do_valid, slowdown=None):
        self.rt = rt
        self.args = rt.args
        self.injector = injector
        self.marker_dir = marker_dir
        self.nan_active = nan_active
        self.do_valid = do_valid
        self.iteration = self.args.iteration
        self.consumed = self.args.consumed_train_samples
        # The LR scheduler state is restored only together with the optimizer state.
        self.sched_steps = self.consumed if (loaded is not None and loaded.optimizer_loaded) else 0
        self.schedule = tlog.LRSchedule(self.args)
        self.scaler = tlog.LossScaler(self.args)
        self.finetune = is_finetune(self.args)
        # The throughput model (throughput.py): a job of ModelLink's performance table logs the table's
        # time per iteration and sleeps only a little of it; any other job sleeps MLEMU_ITER_TIME_MS and
        # logs the time it measured. MLEMU_SLOWDOWN scales either.
        self.clock = throughput.IterationClock(self.args, rt.dist.world_size, slowdown or {})
        if msl.ttp_active(self.args):
            injector.before_act = self._dying_gasp

    def _dying_gasp(self, fault):
        # MindIO TTP catches the step's exception and dumps the current iteration before the process ends.
        if fault.kind in ('crash', 'oom', 'hccl'):
            msl.dying_gasp(self.rt, self.iteration, save_keys(self.args), trainable_per_shard(self.args))

    def run(self):
        args, rt = self.args, self.rt
        self.stop_requested = False
        if getattr(args, 'exit_signal_handler', False):
            # Megatron's --exit-signal-handler (megatron/training/global_vars.py _set_signal_handler:
            # DistributedSignalHandler(SIGTERM)) only records the signal; ModelLink's train()
            # (modellink/training/training.py l. 572-578) saves and exits at the end of the iteration.
            # High availability (--enable-high-availability, closed-source mindio_ttp) installs no
            # SIGTERM handler in any public source, so without this flag SIGTERM ends the process
            # as Python's default action does: killed by the signal, nothing saved.
            signal.signal(signal.SIGTERM, self._on_sigterm)
        rt.print_datetime('before the start of training step')
        report_memory = True
        self._reset_interval()
        saved = False
        while self.iteration < args.train_iters:
            next_iteration = self.iteration + 1
            started = self.injector.check(next_iteration, self.marker_dir, tracebacks.PRETRAIN_TRAIN_STEP, rt.dist)
            if agree_on_nan(self.injector, next_iteration, started):
                self.nan_active = True
            self.step(next_iteration)
            checkpoint.finalize_async_saves()
            lr = self.schedule.get_lr(self.sched_steps)
            self.tensorboard_log(lr)
            if self.iteration % args.log_interval == 0:
                self.log(lr)
                if report_memory and lr > 0.0:
                    self.report_memory()
                    report_memory = False
            if args.eval_interval and self.iteration % args.eval_interval == 0 and self.do_valid:
                self._pause(lambda: evaluate_and_print(rt, f'iteration {self.iteration}', self.iteration))
            saved = False
            if args.save and args.save_interval and self.iteration % args.save_interval == 0:
                self._pause(lambda: save(rt, self.iteration))
                saved = True
            # One collective per iteration keeps the ranks in lock-step (a dead peer is noticed here) and,
            # like ModelLink's train() (modellink/training/training.py l. 572-578: signal_handler.signals_received()
            # all-gathers over the ranks, then save_checkpoint_and_time and exit), ORs "SIGTERM received" over
            # the gang, so every rank saves the same iteration and stops.
            flags = gang.all_reduce_or(gang.STOP if self.stop_requested else 0,
                                       tracebacks.PRETRAIN_TRAIN_STEP[:-1] + tracebacks.ALLREDUCE)
            if flags & gang.STOP:
                if args.save and not saved:
                    self._pause(lambda: save(rt, self.iteration))
                # Megatron's exit signal handler: save, then sys.exit() (status 0).
                rt.print_datetime('exiting program after receiving SIGTERM.')
                sys.stdout.flush()
                sys.exit()
            if args.exit_interval and self.iteration % args.exit_interval == 0:
                if args.save and not saved:
                    self._pause(lambda: save(rt, self.iteration))
                gang.barrier(tracebacks.PRETRAIN_TRAIN_SAVE[:-2] + [
                    ('modellink/training/training.py', 497, 'train', 'torch.distributed.barrier()')] + tracebacks.BARRIER)
                rt.print_datetime('exiting program at iteration {}'.format(self.iteration))
                sys.exit()
        return self.iteration

    def _on_sigterm(self, signum, frame):
        self.stop_requested = True

    def step(self, iteration):
        args = self.args
        time.sleep(self.clock.wall_s(iteration))
        modelled = self.clock.logged_s(iteration)
        if modelled is not None:
            self.modelled_s += modelled
        self.iteration = iteration
        self.consumed += args.global_batch_size
        args.consumed_train_samples = self.consumed
        skipped, got_nan, gnorm, loss = 0, 0, None, None
        if self.nan_active:
            if args.check_for_nan_in_loss_and_grad:
                rank = self.rt.dist.last
                tracebacks.die(tracebacks.PRETRAIN_TRAIN_STEP + tracebacks.LOSS, 'ValueError',
                               f'Rank {rank}: found NaN in local forward loss calculation. '
                               f'Device: {rank % 8}, node: {self.rt.dist.hostname}')
            if self.scaler.dynamic:
                # fp16: the grad scaler finds inf/nan, the step is skipped and the scale backs off.
                skipped, got_nan = 1, 1
                self.scaler.update(True)
            else:
                # bf16/fp32 with --no-check-for-nan-in-loss-and-grad (ModelLink pretrain_gpt.py loss_func no
                # longer raises): no loss scaler, so the step is not skipped; Megatron's training_log
                # (core_r0.6.0 megatron/training/training.py l. 619-631) sums the NaN, counts no `nan
                # iterations` (it counts only skipped steps), and drops `lm loss` as an average not > 0
                # (l. 793-797); the gradient norm is NaN too.
                loss, gnorm = float('nan'), float('nan')
                self.sched_steps += args.global_batch_size
        else:
            loss, gnorm = tlog.lm_loss(iteration, self.finetune), tlog.grad_norm(iteration)
            self.scaler.update(False)
            self.sched_steps += args.global_batch_size
        # What this iteration hands training_log: its loss (none when the step was skipped) and grad norm.
        self.iteration_loss = None if skipped else loss
        if skipped:
            self.skipped += 1
        else:
            self.advanced += 1
            self.loss_sum += loss
        self.nan_iters += got_nan
        self.last_grad_norm = gnorm

    def tensorboard_log(self, lr):
        """The TensorBoard half of Megatron's training_log (core_r0.6.0 megatron/training/training.py
        l. 674-751), every --tensorboard-log-interval iterations: each scalar against the iteration and
        against the consumed samples ('... vs samples'), on the last rank's writer."""
        args, writer = self.args, self.rt.tensorboard
        if writer is None or self.iteration % args.tensorboard_log_interval != 0:
            return
        scalars = []
        if args.log_learning_rate_to_tensorboard:
            scalars.append(('learning-rate', lr))
        if args.log_batch_size_to_tensorboard:
            scalars.append(('batch-size', args.global_batch_size))
        if self.iteration_loss is not None:
            scalars.append(('lm loss', self.iteration_loss))
        if args.log_loss_scale_to_tensorboard:
            scalars.append(('loss-scale', self.scaler.scale))
        if args.log_world_size_to_tensorboard:
            scalars.append(('world-size', args.world_size))
        if self.last_grad_norm is not None:
            scalars.append(('grad-norm', self.last_grad_norm))
        if args.log_num_zeros_in_grad:
            scalars.append(('num-zeros', 0.0))
        if args.log_params_norm:
            scalars.append(('params-norm', tlog.grad_norm(self.iteration) * 100 + 1000))
        for tag, value in scalars:
            writer.add_scalar(tag, value, self.iteration)
            writer.add_scalar(tag + ' vs samples', value, self.consumed)

    def log(self, lr):
        args = self.args
        if self.clock.modelled:
            elapsed = self.modelled_s
        else:
            elapsed = time.monotonic() - self.interval_start - self.paused
        per_iter = elapsed / max(1, self.advanced + self.skipped)
        avg = self.loss_sum / max(1, self.advanced)
        losses = {'lm loss': avg}
        if getattr(args, 'posttrain_stage', None) == 'dpo':
            # DPOTrainer's metrics: rewards/accuracies first, then 'lm loss' (the DPO loss, from ln 2 down).
            losses = {'rewards/accuracies': tlog.dpo_reward_accuracy(self.iteration),
                      'lm loss': tlog.dpo_loss(self.iteration)}
        line = tlog.format_log_line(
            args, self.iteration, self.consumed, per_iter, lr, args.global_batch_size, losses,
            self.scaler.scale, self.last_grad_norm, self.skipped, self.nan_iters,
            params_norm=(tlog.grad_norm(self.iteration) * 100 + 1000) if args.log_params_norm else None,
            num_zeros=0.0 if args.log_num_zeros_in_grad else None)
        self.rt.print_last(line)
        writer = self.rt.tensorboard
        if writer is not None and args.log_timers_to_tensorboard:
            # training_log at --log-interval: the time per iteration, and the TFLOP/s with --log-throughput.
            writer.add_scalar('iteration-time', per_iter, self.iteration)
            if args.log_throughput:
                flops = tlog.num_floating_point_operations(args, args.global_batch_size)
                writer.add_scalar('throughput', flops / (max(per_iter, 1e-9) * 10 ** 12 * args.world_size), self.iteration)
        self._reset_interval()

    def report_memory(self):
        args, dist = self.args, self.rt.dist
        tp, pp = args.tensor_model_parallel_size, args.pipeline_model_parallel_size
        cp = getattr(args, 'context_parallel_size', 1) or 1
        owners = sorted(checkpoint.owner_rank(t, p, 0, tp, args.data_parallel_size, cp)
                        for t in range(tp) for p in range(pp))
        hosted = [r for r in owners if dist.hosts(r)]
        if hosted:
            print(tlog.memory_report(args, hosted[0], self.iteration), flush=True)

    def _reset_interval(self):
        self.interval_start = time.monotonic()
        self.paused = 0.0
        self.modelled_s = 0.0
        self.loss_sum = 0.0
        self.advanced = 0
        self.skipped = 0
        self.nan_iters = 0

    def _pause(self, action):
        """Megatron stops the interval timer around evaluation and checkpointing."""
        t0 = time.monotonic()
        action()
        self.paused += time.monotonic() - t0


def save_keys(args):
    keys = ['args', 'checkpoint_version', 'iteration', 'model', 'num_floating_point_operations_so_far']
    if not args.no_save_optim:
        keys += ['optimizer', 'opt_param_scheduler']
    if not args.no_save_rng:
        keys.append('rng_state')
    return sorted(keys)


def save(rt, iteration, stack=tracebacks.PRETRAIN_TRAIN_SAVE):
    args = rt.args
    t0 = time.monotonic()
    checkpoint.save_checkpoint(
        rt, args.save, iteration, args, save_keys(args),
        with_distrib_optim=bool(args.use_distributed_optimizer and not args.no_save_optim),
        lora=bool(args.lora_target_modules), save_time_ms=env.save_time_ms(), stack=stack,
        trainable=trainable_per_shard(args))
    ms = (time.monotonic() - t0) * 1000
    rt.print_last(tlog.timers_block([('save-checkpoint', (ms * 0.99, ms))]))
    msl.online_mg2hf(rt, iteration)


def evaluate_and_print(rt, prefix, iteration, tensorboard=True):
    args = rt.args
    time.sleep(args.eval_iters * env.iter_time_ms() / 3000.0)
    loss = tlog.validation_loss(iteration, is_finetune(args))
    rt.print_last(tlog.validation_block(prefix, loss))
    writer = rt.tensorboard if tensorboard else None
    if writer is not None:
        # evaluate_and_print_results (core_r0.6.0 megatron/training/training.py l. 1261-1272).
        tags = [('lm loss validation', loss)]
        if args.log_validation_ppl_to_tensorboard:
            tags.append(('lm loss validation ppl', math.exp(min(20, loss))))
        for tag, value in tags:
            writer.add_scalar(tag, value, iteration)
            writer.add_scalar(tag + ' vs samples', value, args.consumed_train_samples)
