/* LD_PRELOAD shim for tests: the CARLA 0.9.16 client's Traffic Manager loses one tick signal.
 *
 * TrafficManagerLocal::Run checks its start flag (step_begin) under its mutex and then waits on
 * its condition variable; SynchronousTick, on the thread that calls world.tick(), sets that flag
 * and notifies without the mutex (carla-simulator/carla#9172). This shim wraps
 * std::condition_variable::wait. The first time Run calls it, it stops the Traffic Manager's
 * thread between its check and its wait until the ticking thread has set the flag and notified
 * (no one), then waits: the interleaving that hangs a client, every time. Every other call passes
 * through. The flag's place next to the condition variable is the layout of the 0.9.16 wheel
 * (TrafficManagerLocal: step_begin at +0x1149, step_begin_trigger at +0x1178).
 *
 * While it stops the thread the shim releases the Traffic Manager's mutex: the ticking thread may
 * still need it to return from the previous tick (it was woken by the end of the previous cycle
 * and relocks it), and would otherwise never set the flag (a deadlock of the shim's own making,
 * seen under load, that no server could undo). std::unique_lock<std::mutex> holds the mutex's
 * address first, and std::mutex is a pthread_mutex_t.
 *
 * Build: cc -shared -fPIC -O1 -o tm_lost_wakeup.so tm_lost_wakeup.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define WAIT_SYMBOL "_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE"
#define RUN_SYMBOL "_ZN5carla15traffic_manager19TrafficManagerLocal3RunEv"
#define FLAG_BEFORE_CONDVAR (0x1178 - 0x1149)

typedef void (*wait_fn)(void *condvar, void *lock);

static atomic_int held;

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int called_from_run(void *return_address) {
    Dl_info info;
    return dladdr(return_address, &info) && info.dli_sname && strcmp(info.dli_sname, RUN_SYMBOL) == 0;
}

/* std::condition_variable::wait(std::unique_lock<std::mutex>&) */
void _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE(void *condvar, void *lock) {
    static wait_fn real;
    if (!real) { /* libstdc++ came with the client's module (RTLD_LOCAL): not in RTLD_NEXT's scope */
        void *libstdcxx = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
        real = (wait_fn)dlsym(libstdcxx ? libstdcxx : RTLD_NEXT, WAIT_SYMBOL);
    }
    if (!atomic_load(&held) && called_from_run(__builtin_return_address(0)) && !atomic_exchange(&held, 1)) {
        volatile unsigned char *step_begin = (volatile unsigned char *)condvar - FLAG_BEFORE_CONDVAR;
        pthread_mutex_t *mutex = *(pthread_mutex_t **)lock;
        pthread_mutex_unlock(mutex);
        while (!*step_begin) /* the ticking thread sets it, then notifies no one */
            sleep_ms(1);
        sleep_ms(100); /* ... and is past its notify_one, waiting for the end of the cycle */
        pthread_mutex_lock(mutex);
    }
    real(condvar, lock);
}
