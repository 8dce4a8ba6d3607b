"""inference.py: load a checkpoint like evaluation.py does, then run the generation tasks.

Tasks (--task, default all): greedy, do_sample, beam_search, beam_search_with_sampling,
return_output_log_probs, chat. chat reads prompts from stdin ("You >> "), stops on q/quit/exit,
and -- like the real input() loop -- dies with EOFError when stdin ends.
"""
import logging
import os
import sys
import time
import zlib

from . import args as argsmod
from . import checkpoint, env, faults, gang, logs, megatron, tracebacks, version

ENTRYPOINT = 'inference.py'
MAIN = [('inference.py', 71, '<module>', 'main()')]
INIT_STACK = MAIN + [('inference.py', 56, 'main', 'initialize_megatron(extra_args_provider=add_text_generate_args,')]
LOAD_STACK = MAIN + [('inference.py', 62, 'main', 'model = MegatronModuleForCausalLM.from_pretrained('),
                     ('modellink/tasks/inference/text_generation/module.py', 233, 'from_pretrained',
                      "load_checkpoint(args.model, None, None, 'load')")]
TASKS = ['greedy', 'do_sample', 'beam_search', 'beam_search_with_sampling', 'return_output_log_probs', 'chat']
TITLES = {'greedy': '\n=============== Greedy Search ================',
          'do_sample': '\n================ Do Sample =================',
          'beam_search': '\n=============== Beam Search =================',
          'beam_search_with_sampling': '\n======== Beam Search with sampling =========='}
CANNED = ("I'm doing well, thank you for asking! I am a language model trained with ModelLink on Ascend NPUs. "
          "How can I help you today? Feel free to ask me anything about science, history, programming or daily "
          "life, and I will do my best to give you a clear and useful answer.")


def main(argv=None):
    args = argsmod.parse(ENTRYPOINT, argv)
    dist = env.Dist()
    env.line_buffered_stdio()
    marker_dir = env.marker_dir(os.path.dirname(os.path.abspath(args.load)) if args.load else os.getcwd())
    faults.FaultInjector(ENTRYPOINT).check(0, marker_dir, MAIN, dist, training=False)
    rt = megatron.initialize(ENTRYPOINT, args, INIT_STACK, args_defaults={'no_load_rng': True, 'no_load_optim': True},
                             dist=dist)
    logs.setup(dist.hosts_rank0)
    rt.print0('building GPT model ...')
    if args.load:
        checkpoint.load_checkpoint(rt, args.load, LOAD_STACK, has_optimizer=False)

    # MindSpeed-LLM's task_map has no return_output_log_probs (2.3.0 mindspeed_llm/tasks/inference/infer_base.py#L40-46,
    # the same on 1.0.0-26.0.0); with --task omitted it runs all five, chat included (#L50-57).
    tasks = [t for t in TASKS if t != 'return_output_log_probs'] if version.current().is_msl else TASKS
    for task in (args.task if args.task is not None else tasks):
        if task not in tasks:
            frame = ('mindspeed_llm/tasks/inference/infer_base.py', 61, 'task_factory',
                     'raise ValueError("Task name incorrect.")') if version.current().is_msl else \
                ('modellink/tasks/inference/text_generation/infer_base.py', 84, 'task_factory', None)
            tracebacks.die(MAIN + [('inference.py', 67, 'main', 'task_factory(args, model)'), frame],
                           'ValueError', 'Task name incorrect.')
        generate_guard(rt, task)
        if task == 'chat':
            chat(rt)
        else:
            one_shot(rt, task)
    # No node may leave while another still needs it (it would see a lost peer).
    gang.barrier(MAIN + [('inference.py', 68, 'main', 'torch.distributed.barrier()')] + tracebacks.BARRIER)
    return 0


def generate_guard(rt, task):
    if rt.dp > 1:
        tracebacks.die(MAIN + [('inference.py', 67, 'main', 'task_factory(args, model)'),
                               ('modellink/tasks/inference/text_generation/module.py', 243, 'generate', None)],
                       'ValueError', 'In this inference mode data parallel is forbidden.')


def answer(prompt, max_new_tokens):
    words = CANNED.split()
    start = zlib.crc32(prompt.encode('utf-8')) % 3
    return ' '.join(words[start:start + max(1, max_new_tokens)])


def one_shot(rt, task):
    args = rt.args
    instruction = 'how are you?'
    t0 = time.time()
    time.sleep(env.iter_time_ms() / 1000.0)
    if task == 'return_output_log_probs':
        logging.info('\n===========================================')
        logging.info('Probability Distribution:\n%s', [[-0.6931, -1.2040, -0.3567]])
        logging.info('Beam Search Score:\n%s', [-2.2538])
        logging.info('===========================================')
    else:
        logging.info(TITLES[task])
        logging.info('\nYou:\n%s\n\nModelLink:\n%s', instruction, answer(instruction, args.max_new_tokens))
        logging.info('=' * (len(TITLES[task]) - 1))
    logging.info('\nElapsed: %ss', round(time.time() - t0, 2))


def chat(rt):
    args = rt.args
    first = True
    while True:
        if first:
            logging.info('===========================================================')
            logging.info('1. If you want to quit, please entry one of [q, quit, exit]')
            logging.info('2. To create new title, please entry one of [clear, new]')
            logging.info('===========================================================')
            first = False
        sys.stdout.write('\n\nYou >> ')
        sys.stdout.flush()
        line = sys.stdin.readline()
        if line == '':
            tracebacks.die(MAIN + [('inference.py', 67, 'main', 'task_factory(args, model)'),
                                   ('modellink/tasks/inference/text_generation/infer_base.py', 86, 'task_factory',
                                    'task_map.get(task)('),
                                   ('modellink/tasks/inference/text_generation/infer_base.py', 300, 'task_chat',
                                    'prompt = input(input_template)')],
                           'EOFError', 'EOF when reading a line')
        prompt = line.strip()
        if prompt in ('q', 'exit', 'quit'):
            return
        if prompt in ('clear', 'new'):
            first = True
            continue
        if not prompt:
            continue
        time.sleep(env.iter_time_ms() / 1000.0)
        sys.stdout.write('\nModelLink:\n' + answer(prompt, args.max_new_tokens))
        sys.stdout.flush()
