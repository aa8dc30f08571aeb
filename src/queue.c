/* queue.c — placeholder until the core lands */
