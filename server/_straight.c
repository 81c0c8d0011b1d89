/* server._straight: the fan-out's write loop (`server.outbox.offer_each`) in C.
 *
 * The same loop as the pure-Python `offer_each` in server/outbox.py, with the same outcome for
 * every frame, and one difference: where the addressee's transport holds nothing unsent and
 * is not closing, and its socket's descriptor is known (`fd` >= 0: a plain TCP socket, never
 * TLS), the frame goes to the socket with one send(2) of header and payload, copied together on
 * the stack, instead of through the transport's write: a bytes object made for the two, then
 * uvloop's buffering and libuv's write. Whatever the socket does not
 * take at once goes through the transport's write after all, which keeps it in order and reports
 * a broken socket as it always does. Nothing unsent in the transport means nothing written before
 * this frame is still waiting, so the order of frames on the wire is the order they were offered.
 *
 * At ten thousand watchers a flush is mostly this loop; in Python each frame costs an interpreter
 * turn, a bytes concatenation and the transport's buffering (docs/architecture.md, BENCHMARKS.md
 * Profile). VQ_PURE_PYTHON=true makes server.outbox ignore this module; the tests run both ways.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Frames this process wrote whole to their socket, skipping their transport (for the tests and the
 * bench: `socket_writes()`). */
static unsigned long long socket_writes;

static PyObject *str_direct, *str_headers, *str_fd, *str_outbox, *str_offer, *str_write,
    *str_is_closing, *str_get_write_buffer_size;

/* 1: the transport may be bypassed now; 0: it may not; -1: an exception is set. */
static int
transport_idle(PyObject *transport)
{
    PyObject *closing = PyObject_CallMethodNoArgs(transport, str_is_closing);
    if (closing == NULL)
        return -1;
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (is_closing != 0)
        return is_closing < 0 ? -1 : 0;
    PyObject *size = PyObject_CallMethodNoArgs(transport, str_get_write_buffer_size);
    if (size == NULL)
        return -1;
    Py_ssize_t buffered = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (buffered == -1 && PyErr_Occurred())
        return -1;
    return buffered == 0;
}

/* head + payload to the socket, without waiting: the bytes written, or -1 (errno set). A frame
 * that short (a position's is about 100 bytes) is copied into one buffer on the stack and sent
 * whole: send(2) is a shorter way through the kernel than sendmsg(2) with two pieces. */
static ssize_t
send_frame(int fd, PyObject *head, PyObject *payload)
{
    char whole[256];
    Py_ssize_t head_size = PyBytes_GET_SIZE(head), size = PyBytes_GET_SIZE(payload);
    ssize_t wrote;
    if (head_size + size <= (Py_ssize_t)sizeof(whole)) {
        memcpy(whole, PyBytes_AS_STRING(head), head_size);
        memcpy(whole + head_size, PyBytes_AS_STRING(payload), size);
        do {
            wrote = send(fd, whole, head_size + size, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (wrote < 0 && errno == EINTR);
        return wrote;
    }
    struct iovec pieces[2] = {
        {PyBytes_AS_STRING(head), (size_t)head_size},
        {PyBytes_AS_STRING(payload), (size_t)size},
    };
    struct msghdr message = {.msg_iov = pieces, .msg_iovlen = 2};
    do {
        wrote = sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (wrote < 0 && errno == EINTR);
    return wrote;
}

/* transport.write((head + payload)[skip:]): 0, or -1 with an exception set. */
static int
write_rest(PyObject *transport, PyObject *head, PyObject *payload, Py_ssize_t skip)
{
    Py_ssize_t head_size = PyBytes_GET_SIZE(head), size = PyBytes_GET_SIZE(payload);
    PyObject *data = PyBytes_FromStringAndSize(NULL, head_size + size - skip);
    if (data == NULL)
        return -1;
    char *out = PyBytes_AS_STRING(data);
    if (skip < head_size) {
        memcpy(out, PyBytes_AS_STRING(head) + skip, head_size - skip);
        memcpy(out + head_size - skip, PyBytes_AS_STRING(payload), size);
    }
    else {
        memcpy(out, PyBytes_AS_STRING(payload) + (skip - head_size), size - (skip - head_size));
    }
    PyObject *done = PyObject_CallMethodOneArg(transport, str_write, data);
    Py_DECREF(data);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

/* One frame by the straight path: 1 written (or handed to the transport), 0 it must take the
 * long way, -1 an exception is set. */
static int
straight(PyObject *addressee, PyObject *payload)
{
    int result = -1;
    PyObject *transport = NULL, *headers = NULL, *fd_obj = NULL;
    transport = PyObject_GetAttr(addressee, str_direct);
    if (transport == NULL)
        goto done;
    if (transport == Py_None) {
        result = 0;
        goto done;
    }
    headers = PyObject_GetAttr(addressee, str_headers);
    if (headers == NULL)
        goto done;
    if (!PyTuple_Check(headers)) {
        PyErr_SetString(PyExc_TypeError, "headers must be a tuple of bytes");
        goto done;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    if (size >= PyTuple_GET_SIZE(headers)) {
        result = 0;
        goto done;
    }
    PyObject *head = PyTuple_GET_ITEM(headers, size);
    if (!PyBytes_Check(head)) {
        PyErr_SetString(PyExc_TypeError, "headers must be a tuple of bytes");
        goto done;
    }
    fd_obj = PyObject_GetAttr(addressee, str_fd);
    if (fd_obj == NULL)
        goto done;
    long fd = PyLong_AsLong(fd_obj);
    if (fd == -1 && PyErr_Occurred())
        goto done;
    Py_ssize_t sent = 0;
    if (fd >= 0) {
        int idle = transport_idle(transport);
        if (idle < 0)
            goto done;
        if (idle) {
            ssize_t wrote = send_frame((int)fd, head, payload);
            if (wrote == (ssize_t)(PyBytes_GET_SIZE(head) + size)) {
                socket_writes++;
                result = 1;
                goto done;
            }
            /* Partly taken, or not at all (full, or broken: the transport finds out which). */
            sent = wrote > 0 ? (Py_ssize_t)wrote : 0;
        }
    }
    result = write_rest(transport, head, payload, sent) < 0 ? -1 : 1;
done:
    Py_XDECREF(transport);
    Py_XDECREF(headers);
    Py_XDECREF(fd_obj);
    return result;
}

PyDoc_STRVAR(offer_each_doc,
             "offer_each(to, frames, replaceable) -> int\n\n"
             "server.outbox.offer_each's loop: returns how many frames took the straight path "
             "(the caller counts them as sent; the long way counts its own).");

static PyObject *
offer_each(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "offer_each(to, frames, replaceable)");
        return NULL;
    }
    PyObject *to = PySequence_Fast(args[0], "to must be a sequence");
    if (to == NULL)
        return NULL;
    PyObject *frames = PySequence_Fast(args[1], "frames must be a sequence");
    if (frames == NULL) {
        Py_DECREF(to);
        return NULL;
    }
    PyObject *replaceable = args[2];
    Py_ssize_t count = PySequence_Fast_GET_SIZE(to), straight_count = 0;
    PyObject *result = NULL;
    if (PySequence_Fast_GET_SIZE(frames) != count) {
        PyErr_SetString(PyExc_ValueError, "to and frames differ in length");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *addressee = PySequence_Fast_GET_ITEM(to, i);
        PyObject *payload = PySequence_Fast_GET_ITEM(frames, i);
        if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "frames must be bytes");
            goto done;
        }
        int taken = straight(addressee, payload);
        if (taken < 0)
            goto done;
        if (taken) {
            straight_count++;
            continue;
        }
        PyObject *outbox = PyObject_GetAttr(addressee, str_outbox);
        if (outbox == NULL)
            goto done;
        PyObject *offered = PyObject_CallMethodObjArgs(outbox, str_offer, payload, replaceable, NULL);
        Py_DECREF(outbox);
        if (offered == NULL)
            goto done;
        Py_DECREF(offered);
    }
    result = PyLong_FromSsize_t(straight_count);
done:
    Py_DECREF(to);
    Py_DECREF(frames);
    return result;
}

PyDoc_STRVAR(socket_writes_doc,
             "socket_writes() -> int\n\nFrames written whole to their socket, skipping their transport.");

static PyObject *
get_socket_writes(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return PyLong_FromUnsignedLongLong(socket_writes);
}

static PyMethodDef methods[] = {
    {"offer_each", (PyCFunction)(void (*)(void))offer_each, METH_FASTCALL, offer_each_doc},
    {"socket_writes", get_socket_writes, METH_NOARGS, socket_writes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server._straight",
    .m_doc = "The fan-out's write loop in C (see server/outbox.py, offer_each).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__straight(void)
{
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&str_direct, "direct"},
        {&str_headers, "headers"},
        {&str_fd, "fd"},
        {&str_outbox, "outbox"},
        {&str_offer, "offer"},
        {&str_write, "write"},
        {&str_is_closing, "is_closing"},
        {&str_get_write_buffer_size, "get_write_buffer_size"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {
            *names[i].slot = PyUnicode_InternFromString(names[i].name);
            if (*names[i].slot == NULL)
                return NULL;
        }
    }
    return PyModule_Create(&module_def);
}
