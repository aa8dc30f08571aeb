/* pool.c — placeholder until the core lands */
